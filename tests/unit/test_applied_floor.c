/* test_applied_floor.c - the checkpoint queries hold Redis to. */
#include <criterion/criterion.h>

#include "readmodel/applied_floor.h"

Test(applied_floor, rises_and_comes_down_only_to_the_logs_head)
{
    struct applied_floor floor;
    applied_floor_init(&floor);
    cr_expect_eq(applied_floor_get(&floor), 0);
    applied_floor_raise(&floor, 10);
    cr_expect_eq(applied_floor_get(&floor), 10);
    applied_floor_raise(&floor, 7); /* Redis' own, behind: the floor stays */
    cr_expect_eq(applied_floor_get(&floor), 10);
    applied_floor_cap(&floor, 10, 12); /* the log goes further: nothing to bring down */
    cr_expect_eq(applied_floor_get(&floor), 10);
    applied_floor_cap(&floor, 9, 3); /* raised since the head was read: it stays */
    cr_expect_eq(applied_floor_get(&floor), 10);
    applied_floor_cap(&floor, 10, 3); /* the log went back in time */
    cr_expect_eq(applied_floor_get(&floor), 3);
    applied_floor_raise(NULL, 1);
    applied_floor_cap(NULL, 1, 0);
    cr_expect_eq(applied_floor_get(NULL), 0);
}
