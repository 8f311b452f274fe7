/*
 * test_format.h — snprintf for unit tests that fails the test, rather than
 * cutting the text, when the buffer is too small (a path cut short would
 * make a test pass or fail for the wrong reason).
 */
#ifndef REALMFS_TEST_FORMAT_H
#define REALMFS_TEST_FORMAT_H

#include <check.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

__attribute__((format(printf, 3, 4)))
static inline void format_checked(char *buffer, size_t size, const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    int length = vsnprintf(buffer, size, format, arguments);
    va_end(arguments);
    ck_assert_msg(length >= 0 && (size_t)length < size, "too long: %s", buffer);
}

#endif
