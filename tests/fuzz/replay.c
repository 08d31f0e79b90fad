/* Runs a harness's LLVMFuzzerTestOneInput over files and directories of
 * inputs (a corpus), so that every build, whatever its compiler, replays
 * the corpus as a regression test. Exit 0 when every input ran; a bug
 * aborts (or a sanitizer reports) on the input, which is named first. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define INPUT_MAX (1024 * 1024 + 1)

static int run_file(const char *path)
{
	static uint8_t buf[INPUT_MAX];
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0 || (len += (size_t)n) == sizeof(buf))
			break;
	}
	close(fd);
	fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(buf, len);
	return 0;
}

static int compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files of a directory, in name order, so that runs are repeatable. */
static int run_dir(const char *dir, size_t *count)
{
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	DIR *d = opendir(dir);

	if (!d) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			char **more = realloc(names, cap * sizeof(*names));
			if (!more)
				abort();
			names = more;
		}
		if (!(names[n++] = strdup(e->d_name)))
			abort();
	}
	closedir(d);
	qsort(names, n, sizeof(*names), compare);
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (run_file(path) < 0)
			r = -1;
		else
			(*count)++;
		free(names[i]);
	}
	free(names);
	return r;
}

int main(int argc, char **argv)
{
	size_t count = 0;
	int r = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			if (run_dir(argv[i], &count) < 0)
				r = 1;
		} else if (run_file(argv[i]) < 0) {
			r = 1;
		} else {
			count++;
		}
	}
	fprintf(stderr, "replay: %zu inputs ran\n", count);
	return r == 0 && count > 0 ? 0 : 1;
}
