/* test_parked_set.c - the projector's memory of parked events. */
#include <criterion/criterion.h>

#include "projection/parked_set.h"

#define A "01a22251-dd91-7000-8f9f-c3d82b98a444"
#define B "01a22252-179d-7000-af59-8c35b52a6e38"

Test(parked_set, products_and_seqs)
{
    struct parked_set *set = parked_set_new();
    cr_assert_eq(parked_set_products(set), 0);
    cr_assert_not(parked_set_has_seq(set, 3));
    parked_set_add(set, A, 3);
    parked_set_add(set, A, 5);
    parked_set_add(set, B, 9);
    cr_assert_eq(parked_set_products(set), 2);
    cr_assert(parked_set_has_product(set, A));
    cr_assert(parked_set_has_product(set, B));
    cr_assert_not(parked_set_has_product(set, "01a22253-0000-7000-8000-000000000000"));
    cr_assert(parked_set_has_seq(set, 3) && parked_set_has_seq(set, 5) &&
              parked_set_has_seq(set, 9));
    cr_assert_not(parked_set_has_seq(set, 4));
    parked_set_clear(set);
    cr_assert_eq(parked_set_products(set), 0);
    cr_assert_not(parked_set_has_seq(set, 3));
    cr_assert_not(parked_set_has_product(set, A));
    parked_set_free(set);
    parked_set_free(NULL);
}

Test(parked_set, grows_past_its_first_allocation)
{
    struct parked_set *set = parked_set_new();
    for (int64_t seq = 1; seq <= 1000; seq++)
        parked_set_add(set, seq % 2 ? A : B, seq);
    cr_assert_eq(parked_set_products(set), 2);
    for (int64_t seq = 1; seq <= 1000; seq++)
        cr_assert(parked_set_has_seq(set, seq));
    cr_assert_not(parked_set_has_seq(set, 1001));
    parked_set_free(set);
}
