/* test_applied_floor.c - the checkpoint queries hold Redis to, per generation. */
#include <criterion/criterion.h>

#include "readmodel/applied_floor.h"

Test(applied_floor, rises_never_falls_and_moves_with_the_generation)
{
    struct applied_floor floor;
    applied_floor_init(&floor);
    cr_expect_eq(applied_floor_in(&floor, 3), 0); /* none known yet */
    applied_floor_raise(&floor, 3, 10);
    cr_expect_eq(applied_floor_in(&floor, 3), 10);
    applied_floor_raise(&floor, 3, 7); /* Redis' own, behind: the floor stays */
    cr_expect_eq(applied_floor_in(&floor, 3), 10);
    applied_floor_raise(&floor, 3, 12);
    cr_expect_eq(applied_floor_in(&floor, 3), 12);
    cr_expect_eq(applied_floor_in(&floor, 2), 0); /* another generation's says nothing */
    applied_floor_raise(&floor, 4, 5);            /* a rebuilt one, wherever it starts */
    cr_expect_eq(applied_floor_in(&floor, 4), 5);
    cr_expect_eq(applied_floor_in(&floor, 3), 0);
    cr_expect_eq(applied_floor_in(&floor, 0), 0);
    applied_floor_destroy(&floor);
    applied_floor_raise(NULL, 1, 1);
    cr_expect_eq(applied_floor_in(NULL, 1), 0);
}
