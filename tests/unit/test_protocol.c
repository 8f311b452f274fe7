#include <check.h>
Suite *unit_suite(void);
Suite *unit_suite(void) { return suite_create("protocol"); }
