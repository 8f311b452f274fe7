/*
 * libFuzzer target for sync protocol frames (protocol.h): the input is a
 * frame.  A frame that parses must serialize, and its text must parse
 * again and serialize to the same bytes; a frame that does not parse must
 * say why with a known code and a message.
 */
#include "realmfs/protocol.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_check_refusal(int result, const protocol_error *error)
{
    if (result != (int)error->code || protocol_error_code_name(result) == NULL ||
        error->message[0] == '\0')
        abort();
}

/* NULL only when the canonical text of an accepted frame outgrows the
 * frame limit (numbers can be written longer than they were sent). */
static char *fuzz_serialize(const protocol_message *message, size_t *length)
{
    protocol_error error;
    char *text = protocol_serialize(message, length, &error);
    if (!text && error.code != PROTOCOL_ERROR_MESSAGE_TOO_LARGE)
        abort();
    return text;
}

static void fuzz_check_round_trip(const protocol_message *message)
{
    size_t length;
    char *text = fuzz_serialize(message, &length);
    if (!text)
        return;
    protocol_message again;
    protocol_error error;
    if (protocol_parse(text, length, &again, &error) != 0)
        abort();
    size_t again_length;
    char *again_text = fuzz_serialize(&again, &again_length);
    if (!again_text || again_length != length || memcmp(text, again_text, length) != 0)
        abort();
    free(again_text);
    protocol_message_clear(&again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    protocol_message message;
    protocol_error error;
    int result = protocol_parse((const char *)data, size, &message, &error);
    if (result != 0) {
        fuzz_check_refusal(result, &error);
        return 0;
    }
    fuzz_check_round_trip(&message);
    protocol_message_clear(&message);
    return 0;
}
