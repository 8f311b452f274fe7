/*
 * Replays a corpus through a libFuzzer target without libFuzzer, so that
 * every seed and every past finding runs as an ordinary test with any
 * compiler.  Usage: fuzz_<name>_replay <corpus directory>
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The whole file, malloc'd (one spare byte so an empty file is no NULL). */
static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *file = fopen(path, "rb");
    if (!file)
        return NULL;
    uint8_t *data = NULL;
    struct stat status;
    if (fstat(fileno(file), &status) == 0 && (data = malloc((size_t)status.st_size + 1)))
        *size = fread(data, 1, (size_t)status.st_size, file);
    fclose(file);
    return data;
}

static int replay_file(const char *directory, const char *name)
{
    char path[4096];
    struct stat status;
    snprintf(path, sizeof path, "%s/%s", directory, name);
    if (stat(path, &status) != 0 || !S_ISREG(status.st_mode))
        return 0;
    size_t size = 0;
    uint8_t *data = read_file(path, &size);
    if (!data) {
        fprintf(stderr, "cannot read %s\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIRECTORY\n", argv[0]);
        return 2;
    }
    DIR *directory = opendir(argv[1]);
    if (!directory) {
        perror(argv[1]);
        return 1;
    }
    int replayed = 0, failed = 0;
    for (struct dirent *entry; (entry = readdir(directory));) {
        int result = replay_file(argv[1], entry->d_name);
        replayed += result > 0;
        failed += result < 0;
    }
    closedir(directory);
    printf("replayed %d inputs from %s\n", replayed, argv[1]);
    return failed == 0 && replayed > 0 ? 0 : 1;
}
