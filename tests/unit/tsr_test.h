/* tests/unit/tsr_test.h - a minimal test harness: CHECK() records failures
 * with file:line and goes on; main returns the failure count. */
#ifndef TSR_TEST_H
#define TSR_TEST_H
#include <stdio.h>
#include <string.h>

extern int tsr_test_failures;
extern int tsr_test_checks;

#define CHECK(cond) do { tsr_test_checks++; if (!(cond)) { tsr_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { tsr_test_checks++; if (!(cond)) { tsr_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
/* The text contains a substring. */
#define CHECK_CONTAINS(text, sub) CHECK_MSG(strstr((text), (sub)) != NULL, \
    "\"%s\" does not contain \"%s\"", (text), (sub))

/* End of a test's main(). */
int tsr_test_report(const char *name);
#endif
