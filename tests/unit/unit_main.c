/*
 * Shared main for the Check unit tests: each test program defines
 * unit_suite() and this runs it, reporting TAP on stdout so that meson
 * counts every test case.
 */
#include <check.h>
#include <stdlib.h>

Suite *unit_suite(void);

int main(void)
{
    SRunner *runner = srunner_create(unit_suite());
    srunner_set_tap(runner, "-");
    srunner_run_all(runner, CK_SILENT);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
