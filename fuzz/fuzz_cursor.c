/* fuzz_cursor.c - libFuzzer target: the catalog cursor from a query string (cursor_decode).
 * Invariants checked, beyond "no crash" (cursor.h: decoding accepts exactly what encoding
 * produces, so each id has one cursor):
 * - a cursor that decodes gives a canonical id, and encoding that id gives back the input,
 *   byte for byte;
 * - the other way round, any 16 bytes (the input's first 16) make a canonical id whose cursor
 *   decodes back to it. */
#include <stdint.h>
#include <string.h>

#include "domain/cursor.h"
#include "domain/uuid7.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char id[UUID_TEXT_LEN + 1], cursor[CURSOR_LEN + 1];

    if (cursor_decode((const char *)data, size, id) == 0) {
        CHECK(size == CURSOR_LEN);
        CHECK(strlen(id) == UUID_TEXT_LEN);
        CHECK(uuid_check_canonical(id, UUID_TEXT_LEN) == 0);
        CHECK(cursor_encode(id, cursor) == 0);
        CHECK(strlen(cursor) == CURSOR_LEN);
        CHECK(memcmp(cursor, data, CURSOR_LEN) == 0);
    }

    if (size >= 16) {
        uint8_t bytes[16], back[16];
        char again[UUID_TEXT_LEN + 1];
        memcpy(bytes, data, sizeof bytes);
        uuid_to_text(bytes, id);
        CHECK(uuid_from_text(id, UUID_TEXT_LEN, back) == 0 && memcmp(back, bytes, 16) == 0);
        CHECK(cursor_encode(id, cursor) == 0);
        CHECK(cursor_decode(cursor, CURSOR_LEN, again) == 0);
        CHECK(strcmp(again, id) == 0);
    }
    return 0;
}
