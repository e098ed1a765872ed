/* test_view_cache.c - the views kept in memory: what a lookup finds, and the two rules that
 * keep them exact (a forget drops a view; a read that raced a forget is not stored). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/uuid7.h"
#include "readmodel/view_cache.h"

static char *alloc_with_malloc(void *arg, size_t len)
{
    (void)arg;
    return malloc(len);
}

/* The view the cache holds for "id" in "generation", as a NUL-terminated string ("" for none). */
static const char *looked_up(struct view_cache *cache, const char *id, int64_t generation)
{
    static char text[VIEW_CACHE_MAX_VIEW + 1];
    char *view = NULL;
    size_t len = view_cache_copy(cache, id, generation, alloc_with_malloc, NULL, &view);
    memcpy(text, view ? view : "", len);
    text[len] = '\0';
    free(view);
    return text;
}

/* A canonical id whose random tail is "n". */
static void make_id(char *id, unsigned n)
{
    snprintf(id, UUID_TEXT_LEN + 1, "01a2372d-9c03-7000-b112-%012x", n);
}

static void store(struct view_cache *cache, const char *id, int64_t generation, const char *view)
{
    view_cache_store(cache, id, generation, view_cache_ticket(cache, id), view, strlen(view));
}

Test(view_cache, a_stored_view_is_found_in_its_generation_only)
{
    struct view_cache *cache = view_cache_new(1 << 20);
    char id[UUID_TEXT_LEN + 1], other[UUID_TEXT_LEN + 1];
    make_id(id, 1);
    make_id(other, 2);
    store(cache, id, 3, "{\"id\":\"a\",\"version\":1}");
    cr_assert_str_eq(looked_up(cache, id, 3), "{\"id\":\"a\",\"version\":1}");
    cr_assert_str_eq(looked_up(cache, id, 4), "", "another generation is another read model");
    cr_assert_str_eq(looked_up(cache, other, 3), "");
    struct view_cache_stats stats;
    view_cache_get_stats(cache, &stats);
    cr_assert_eq(stats.hits, 1);
    cr_assert_eq(stats.misses, 2);
    cr_assert_eq(stats.views, 1);
    cr_assert_eq(stats.bytes, strlen("{\"id\":\"a\",\"version\":1}"));
    view_cache_free(cache);
}

Test(view_cache, a_forgotten_view_is_gone)
{
    struct view_cache *cache = view_cache_new(1 << 20);
    char id[UUID_TEXT_LEN + 1];
    make_id(id, 7);
    store(cache, id, 1, "v1");
    view_cache_forget(cache, id);
    cr_assert_str_eq(looked_up(cache, id, 1), "");
    store(cache, id, 1, "v2");
    cr_assert_str_eq(looked_up(cache, id, 1), "v2", "a read after the forget is stored");
    view_cache_forget_all(cache);
    cr_assert_str_eq(looked_up(cache, id, 1), "");
    struct view_cache_stats stats;
    view_cache_get_stats(cache, &stats);
    cr_assert_eq(stats.views, 0);
    cr_assert_eq(stats.bytes, 0);
    view_cache_free(cache);
}

/* The race the ticket closes: a read is sent, the projector applies a new view and forgets the
 * old one, then the read's reply (the old view) comes back. */
Test(view_cache, a_read_that_raced_a_forget_is_not_stored)
{
    struct view_cache *cache = view_cache_new(1 << 20);
    char id[UUID_TEXT_LEN + 1];
    make_id(id, 9);
    struct view_cache_ticket ticket = view_cache_ticket(cache, id);
    view_cache_forget(cache, id);
    view_cache_store(cache, id, 1, ticket, "old", 3);
    cr_assert_str_eq(looked_up(cache, id, 1), "");

    ticket = view_cache_ticket(cache, id);
    view_cache_forget_all(cache);
    view_cache_store(cache, id, 1, ticket, "old", 3);
    cr_assert_str_eq(looked_up(cache, id, 1), "", "forgetting everything counts too");

    ticket = view_cache_ticket(cache, id);
    view_cache_store(cache, id, 1, ticket, "new", 3);
    cr_assert_str_eq(looked_up(cache, id, 1), "new");
    view_cache_free(cache);
}

Test(view_cache, a_new_view_of_a_product_replaces_the_one_held)
{
    struct view_cache *cache = view_cache_new(1 << 20);
    char id[UUID_TEXT_LEN + 1];
    make_id(id, 11);
    store(cache, id, 1, "first");
    store(cache, id, 2, "second, in the next generation");
    cr_assert_str_eq(looked_up(cache, id, 2), "second, in the next generation");
    cr_assert_str_eq(looked_up(cache, id, 1), "");
    struct view_cache_stats stats;
    view_cache_get_stats(cache, &stats);
    cr_assert_eq(stats.views, 1);
    view_cache_free(cache);
}

/* Ids with the same random tail share a set and a tag: the id itself tells them apart, and a
 * full set gives up one of them for a new one. */
Test(view_cache, ids_that_share_a_set_and_a_tag_are_told_apart)
{
    struct view_cache *cache = view_cache_new(1 << 20);
    char ids[6][UUID_TEXT_LEN + 1], view[16];
    for (int k = 0; k < 6; k++)
        snprintf(ids[k], sizeof(ids[k]), "01a2372d-9c03-700%d-b112-00000000002a", k);
    for (int k = 0; k < 3; k++) {
        snprintf(view, sizeof(view), "view %d", k);
        store(cache, ids[k], 1, view);
    }
    view_cache_forget(cache, ids[1]);
    cr_assert_str_eq(looked_up(cache, ids[0], 1), "view 0");
    cr_assert_str_eq(looked_up(cache, ids[1], 1), "", "only the id forgotten is gone");
    cr_assert_str_eq(looked_up(cache, ids[2], 1), "view 2");
    cr_assert_str_eq(looked_up(cache, ids[3], 1), "", "an id never stored is not found");
    for (int k = 3; k < 6; k++) {
        snprintf(view, sizeof(view), "view %d", k);
        store(cache, ids[k], 1, view);
    }
    int found = 0;
    for (int k = 0; k < 6; k++) {
        const char *held = looked_up(cache, ids[k], 1);
        snprintf(view, sizeof(view), "view %d", k);
        cr_assert(held[0] == '\0' || strcmp(held, view) == 0, "%s holds %s", ids[k], held);
        found += held[0] != '\0';
    }
    struct view_cache_stats stats;
    view_cache_get_stats(cache, &stats);
    cr_assert_eq(found, 4, "a set holds four views: %d found", found);
    cr_assert_eq(stats.views, 4);
    view_cache_free(cache);
}

Test(view_cache, the_byte_budget_holds_and_large_views_are_never_kept)
{
    size_t budget = 1024 * 1024;
    struct view_cache *cache = view_cache_new(budget);
    char id[UUID_TEXT_LEN + 1], view[300];
    memset(view, 'x', sizeof(view) - 1);
    view[sizeof(view) - 1] = '\0';
    for (unsigned n = 0; n < 20000; n++) {
        make_id(id, n * 2654435761u);
        store(cache, id, 1, view);
    }
    struct view_cache_stats stats;
    view_cache_get_stats(cache, &stats);
    cr_assert_leq(stats.bytes, budget * 3 / 4, "the slots take their share of the budget");
    cr_assert_gt(stats.views, budget / sizeof(view) / 2, "the budget is used: %llu views",
                 (unsigned long long)stats.views);
    make_id(id, 424242);
    static char large[VIEW_CACHE_MAX_VIEW + 2];
    memset(large, 'y', sizeof(large) - 1);
    view_cache_forget_all(cache);
    store(cache, id, 1, large);
    cr_assert_str_eq(looked_up(cache, id, 1), "");
    view_cache_free(cache);
}

Test(view_cache, no_cache_at_all_with_a_zero_budget)
{
    struct view_cache *cache = view_cache_new(0);
    cr_assert_null(cache);
    char id[UUID_TEXT_LEN + 1];
    make_id(id, 1);
    store(cache, id, 1, "v");
    cr_assert_str_eq(looked_up(cache, id, 1), "");
    view_cache_forget(cache, id);
    view_cache_forget_all(cache);
    struct view_cache_stats stats;
    view_cache_get_stats(cache, &stats);
    cr_assert_eq(stats.hits + stats.misses + stats.views, 0);
    view_cache_free(cache);
}
