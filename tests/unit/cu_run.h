/* cu_run.h - the shared main of every CUnit runner.
 *
 * A runner lists its tests in a CuTest array ending in {NULL, NULL} and calls
 * cu_run() (or cu_run_in_tmpdir(), which gives them a scratch directory);
 * the process exits non-zero when any assertion failed (plain
 * CU_basic_run_tests reports success whatever happened).
 */
#ifndef PG_CU_RUN_H
#define PG_CU_RUN_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <glib.h>
#include <CUnit/Basic.h>

/* EXPECT(cond, fmt, ...) - an assertion recorded at the caller's line, with
 * a message naming the case; expect_at() for helpers that pass a line on. */
#define EXPECT(cond, ...) cu_expect_at(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define expect_at(ok, line, ...) cu_expect_at((ok), __FILE__, (line), __VA_ARGS__)

static inline void cu_expect_at(int ok, const char *file, int line, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

static inline void
cu_expect_at(int ok, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	char *what;

	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	CU_assertImplementation(ok ? CU_TRUE : CU_FALSE, (unsigned)line, what, file, "",
	    CU_FALSE);
	g_free(what);
}

typedef struct {
	const char *name;
	void (*fn)(void);
} CuTest;

static inline int
cu_run(const char *suite_name, const CuTest *tests)
{
	CU_pSuite suite;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	suite = CU_add_suite(suite_name, NULL, NULL);
	if (!suite)
		return 2;
	for (const CuTest *t = tests; t->name; t++)
		if (!CU_add_test(suite, t->name, t->fn))
			return 2;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	if (CU_get_number_of_tests_run() == 0)
		failures++;
	CU_cleanup_registry();
	return failures > 0 ? 1 : 0;
}

/* cu_run_in_tmpdir - cu_run with *tmpdir a new scratch directory
 * (test_SUITE-XXXXXX under $TMPDIR) for the tests to use, removed after them;
 * 2 when it cannot be made, 1 when it cannot be removed */
static inline int
cu_run_in_tmpdir(const char *suite_name, const CuTest *tests, char **tmpdir)
{
	char *templ = g_strdup_printf("test_%s-XXXXXX", suite_name);
	char *cmd;
	int rc;

	*tmpdir = g_dir_make_tmp(templ, NULL);
	g_free(templ);
	if (!*tmpdir)
		return 2;
	rc = cu_run(suite_name, tests);
	cmd = g_strdup_printf("rm -rf '%s'", *tmpdir);
	if (system(cmd) != 0)
		rc = rc ? rc : 1;
	g_free(cmd);
	g_free(*tmpdir);
	*tmpdir = NULL;
	return rc;
}

#endif
