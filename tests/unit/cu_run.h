/* cu_run.h - the shared main of every CUnit runner.
 *
 * A runner lists its tests in a CuTest array ending in {NULL, NULL} and calls
 * cu_run(); the process exits non-zero when any assertion failed (plain
 * CU_basic_run_tests reports success whatever happened).
 */
#ifndef PG_CU_RUN_H
#define PG_CU_RUN_H

#include <stdio.h>
#include <stdlib.h>
#include <CUnit/Basic.h>

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

#endif
