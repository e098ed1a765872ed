/* test_parked_set.c - the projector's memory of parked events: a hash set of seqs. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "projection/parked_set.h"

Test(parked_set, add_has_remove_clear)
{
    struct parked_set *set = parked_set_new();
    cr_assert_eq(parked_set_count(set), 0);
    cr_assert_not(parked_set_has(set, 3));
    parked_set_add(set, 3);
    parked_set_add(set, 5);
    parked_set_add(set, 5); /* kept once */
    cr_assert_eq(parked_set_count(set), 2);
    cr_assert(parked_set_has(set, 3) && parked_set_has(set, 5));
    cr_assert_not(parked_set_has(set, 4));
    cr_assert_not(parked_set_has(set, 0));
    parked_set_remove(set, 3);
    parked_set_remove(set, 7); /* not there: nothing happens */
    cr_assert_not(parked_set_has(set, 3));
    cr_assert(parked_set_has(set, 5));
    cr_assert_eq(parked_set_count(set), 1);
    parked_set_clear(set);
    cr_assert_eq(parked_set_count(set), 0);
    cr_assert_not(parked_set_has(set, 5));
    parked_set_free(set);
    parked_set_free(NULL);
}

/* Random adds and removes against a plain array of flags: the removal's back-shifting must
 * never lose an entry of a collision run. */
Test(parked_set, agrees_with_a_model_under_churn)
{
    enum { RANGE = 5000, STEPS = 200000 };
    static unsigned char model[RANGE + 1];
    struct parked_set *set = parked_set_new();
    srand(42);
    size_t count = 0;
    for (int step = 0; step < STEPS; step++) {
        int64_t seq = 1 + rand() % RANGE;
        if (rand() % 3) {
            parked_set_add(set, seq);
            count += !model[seq];
            model[seq] = 1;
        } else {
            parked_set_remove(set, seq);
            count -= model[seq];
            model[seq] = 0;
        }
    }
    cr_assert_eq(parked_set_count(set), count);
    for (int64_t seq = 1; seq <= RANGE; seq++)
        cr_assert_eq(parked_set_has(set, seq), model[seq], "seq %lld", (long long)seq);
    parked_set_free(set);
}
