/* applied_floor.c - see applied_floor.h. A reader reads the generation, the checkpoint, then
 * the generation again: a checkpoint read while the generation changed is not taken, and
 * checkpoints of one generation only rise, so any checkpoint taken was the floor at some
 * moment of the read. */
#include "readmodel/applied_floor.h"

void applied_floor_init(struct applied_floor *floor)
{
    pthread_mutex_init(&floor->writing, NULL);
    atomic_init(&floor->generation, 0);
    atomic_init(&floor->checkpoint, 0);
}

void applied_floor_destroy(struct applied_floor *floor)
{
    pthread_mutex_destroy(&floor->writing);
}

void applied_floor_raise(struct applied_floor *floor, int64_t generation, int64_t checkpoint)
{
    if (!floor) return;
    pthread_mutex_lock(&floor->writing);
    if (atomic_load(&floor->generation) != generation) {
        atomic_store(&floor->generation, 0);
        atomic_store(&floor->checkpoint, checkpoint);
        atomic_store(&floor->generation, generation);
    } else if (checkpoint > atomic_load(&floor->checkpoint)) {
        atomic_store(&floor->checkpoint, checkpoint);
    }
    pthread_mutex_unlock(&floor->writing);
}

int64_t applied_floor_in(const struct applied_floor *floor, int64_t generation)
{
    if (!floor || generation <= 0) return 0;
    int64_t before = atomic_load(&floor->generation);
    int64_t checkpoint = atomic_load(&floor->checkpoint);
    int64_t after = atomic_load(&floor->generation);
    return before == generation && after == generation ? checkpoint : 0;
}
