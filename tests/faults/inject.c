/* A fault injector for the integration tests, loaded into echod with
 * LD_PRELOAD: it makes chosen calls of chosen libc functions fail with a
 * chosen errno, so that the tests reach the error paths the kernel only
 * takes under conditions a test cannot make on purpose (an accept that
 * returns EPROTO, a setsockopt the kernel refuses, a read error on a
 * config file, a receive error on a UDP socket, an out-of-memory).
 *
 *   ECHOD_FAULTS="SPEC[,SPEC...]"
 *   SPEC = FUNC=ERRNO[@FIRST][xCOUNT][:ARG]
 *
 * FUNC's calls are numbered from 1 (only the calls that match ARG, if
 * given); calls FIRST (default 1) to FIRST+COUNT-1 (COUNT default 1; x0:
 * every call from FIRST on) fail with ERRNO (a name such as EPROTO, or a
 * number) and do nothing else. ARG narrows the calls counted: for
 * setsockopt and getsockopt the option number, for read the fd's file type
 * (reg, fifo, sock, chr), for epoll_ctl the operation, for socket the
 * domain, for the others the fd. A call that fails is reported on stderr
 * as `inject: FUNC call N fails with ERRNO`, so that a test can see that
 * its fault was reached.
 *
 * Nothing of this is in echod itself: the daemon sees only what a kernel
 * could have returned. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SPECS 16

struct spec {
	char func[24];
	int err;
	unsigned long first, count, calls;
	bool has_arg;
	long arg;
	char type[8];
};

static struct spec specs[MAX_SPECS];
static size_t n_specs;
static bool parsed;
/* Calls are counted from the start of the program, not from the shared
 * libraries' constructors (libgpg-error's allocations before main are not
 * echod's to handle), until it exits. */
static bool armed;

static const struct {
	const char *name;
	int value;
} errnos[] = {
	{ "EPERM", EPERM },         { "ENOENT", ENOENT },       { "EINTR", EINTR },
	{ "EIO", EIO },             { "EBADF", EBADF },         { "EAGAIN", EAGAIN },
	{ "ENOMEM", ENOMEM },       { "EACCES", EACCES },       { "EFAULT", EFAULT },
	{ "EBUSY", EBUSY },         { "EEXIST", EEXIST },       { "ENODEV", ENODEV },
	{ "EINVAL", EINVAL },       { "ENFILE", ENFILE },       { "EMFILE", EMFILE },
	{ "ENOSPC", ENOSPC },       { "EPIPE", EPIPE },         { "ENOSYS", ENOSYS },
	{ "EPROTO", EPROTO },       { "ENOTSOCK", ENOTSOCK },   { "EOPNOTSUPP", EOPNOTSUPP },
	{ "ENOPROTOOPT", ENOPROTOOPT }, { "EADDRINUSE", EADDRINUSE },
	{ "EADDRNOTAVAIL", EADDRNOTAVAIL }, { "ENETDOWN", ENETDOWN },
	{ "ENETUNREACH", ENETUNREACH }, { "ECONNABORTED", ECONNABORTED },
	{ "ECONNRESET", ECONNRESET }, { "ENOBUFS", ENOBUFS },   { "ETIMEDOUT", ETIMEDOUT },
	{ "ECONNREFUSED", ECONNREFUSED }, { "EHOSTUNREACH", EHOSTUNREACH },
	{ "ENOTCONN", ENOTCONN },   { "ESOCKTNOSUPPORT", ESOCKTNOSUPPORT },
	{ "EPROTONOSUPPORT", EPROTONOSUPPORT }, { "EAFNOSUPPORT", EAFNOSUPPORT },
	{ "EMSGSIZE", EMSGSIZE },   { "ENOTDIR", ENOTDIR },     { "EISDIR", EISDIR },
};

static int errno_value(const char *s)
{
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
		if (strcmp(errnos[i].name, s) == 0)
			return errnos[i].value;
	return atoi(s);
}

static void die(const char *what, const char *spec)
{
	fprintf(stderr, "inject: %s in ECHOD_FAULTS spec '%s'\n", what, spec);
	_exit(99);
}

/* Parses one SPEC in place (s is a private copy). */
static void parse_spec(char *s)
{
	struct spec *f;
	char *eq, *p, *end;

	if (n_specs == MAX_SPECS)
		die("too many specs", s);
	f = &specs[n_specs++];
	memset(f, 0, sizeof(*f));
	f->first = f->count = 1;
	eq = strchr(s, '=');
	if (!eq || (size_t)(eq - s) >= sizeof(f->func))
		die("no FUNC=", s);
	memcpy(f->func, s, (size_t)(eq - s));
	p = eq + 1;
	end = p + strcspn(p, "@x:");
	{
		char name[32];
		size_t len = (size_t)(end - p);
		if (len == 0 || len >= sizeof(name))
			die("no ERRNO", s);
		memcpy(name, p, len);
		name[len] = '\0';
		f->err = errno_value(name);
		if (f->err <= 0)
			die("unknown ERRNO", s);
	}
	p = end;
	while (*p) {
		char c = *p++;
		if (c == '@') {
			f->first = strtoul(p, &p, 10);
		} else if (c == 'x') {
			f->count = strtoul(p, &p, 10);
		} else if (c == ':') {
			if (*p >= '0' && *p <= '9') {
				f->arg = strtol(p, &p, 10);
			} else {
				size_t len = strlen(p);
				if (len >= sizeof(f->type))
					die("ARG too long", s);
				memcpy(f->type, p, len + 1);
				p += len;
			}
			f->has_arg = true;
		} else {
			die("unexpected character", s);
		}
	}
	if (f->first == 0)
		die("FIRST counts from 1", s);
}

static void parse(void)
{
	const char *env = getenv("ECHOD_FAULTS");
	char buf[1024], *save = NULL, *tok;

	parsed = true;
	if (!env || !*env)
		return;
	if (strlen(env) >= sizeof(buf))
		die("too long", env);
	strcpy(buf, env);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		parse_spec(tok);
}

#define REAL(ret, name, ...)                                                    \
	static ret (*real_##name)(__VA_ARGS__);                                 \
	static ret (*get_##name(void))(__VA_ARGS__)                             \
	{                                                                       \
		if (!real_##name) {                                             \
			/* POSIX's way from dlsym()'s void * to a function. */  \
			void *sym = dlsym(RTLD_NEXT, #name);                    \
			memcpy(&real_##name, &sym, sizeof(sym));                \
		}                                                               \
		return real_##name;                                             \
	}

REAL(int, fstat64, int, struct stat64 *)
REAL(ssize_t, write, int, const void *, size_t)

static bool type_matches(const char *type, int fd)
{
	struct stat64 st;

	if (get_fstat64()(fd, &st) < 0)
		return false;
	if (strcmp(type, "reg") == 0)
		return S_ISREG(st.st_mode);
	if (strcmp(type, "fifo") == 0)
		return S_ISFIFO(st.st_mode);
	if (strcmp(type, "sock") == 0)
		return S_ISSOCK(st.st_mode);
	if (strcmp(type, "chr") == 0)
		return S_ISCHR(st.st_mode);
	return false;
}

/* Whether this call of func fails; if so errno is set. arg is what ARG is
 * compared with (an option, a size), fd the descriptor for a file type. */
static bool fault(const char *func, long arg, int fd)
{
	if (!armed)
		return false;
	if (!parsed)
		parse();
	for (size_t i = 0; i < n_specs; i++) {
		struct spec *f = &specs[i];
		if (strcmp(f->func, func) != 0)
			continue;
		if (f->has_arg && (f->type[0] ? !type_matches(f->type, fd) : arg != f->arg))
			continue;
		unsigned long n = ++f->calls;
		if (n < f->first || (f->count && n >= f->first + f->count))
			continue;
		char line[96];
		int len = snprintf(line, sizeof(line), "inject: %s call %lu fails with %s\n", func, n,
				   strerrorname_np(f->err) ? strerrorname_np(f->err) : "?");
		if (len > 0)
			(void)!get_write()(STDERR_FILENO, line, (size_t)len);
		errno = f->err;
		return true;
	}
	return false;
}

/* glibc declares the address arguments as transparent unions. */
REAL(int, accept4, int, __SOCKADDR_ARG, socklen_t *, int)
int accept4(int fd, __SOCKADDR_ARG sa, socklen_t *len, int flags)
{
	return fault("accept4", fd, fd) ? -1 : get_accept4()(fd, sa, len, flags);
}

REAL(int, socket, int, int, int)
int socket(int domain, int type, int protocol)
{
	return fault("socket", domain, -1) ? -1 : get_socket()(domain, type, protocol);
}

REAL(int, bind, int, __CONST_SOCKADDR_ARG, socklen_t)
int bind(int fd, __CONST_SOCKADDR_ARG sa, socklen_t len)
{
	return fault("bind", fd, fd) ? -1 : get_bind()(fd, sa, len);
}

REAL(int, listen, int, int)
int listen(int fd, int backlog)
{
	return fault("listen", fd, fd) ? -1 : get_listen()(fd, backlog);
}

REAL(int, setsockopt, int, int, int, const void *, socklen_t)
int setsockopt(int fd, int level, int opt, const void *v, socklen_t len)
{
	return fault("setsockopt", opt, fd) ? -1 : get_setsockopt()(fd, level, opt, v, len);
}

REAL(int, getsockopt, int, int, int, void *, socklen_t *)
int getsockopt(int fd, int level, int opt, void *v, socklen_t *len)
{
	return fault("getsockopt", opt, fd) ? -1 : get_getsockopt()(fd, level, opt, v, len);
}

REAL(int, getsockname, int, __SOCKADDR_ARG, socklen_t *)
int getsockname(int fd, __SOCKADDR_ARG sa, socklen_t *len)
{
	return fault("getsockname", fd, fd) ? -1 : get_getsockname()(fd, sa, len);
}

REAL(int, epoll_ctl, int, int, int, struct epoll_event *)
int epoll_ctl(int ep, int op, int fd, struct epoll_event *ev)
{
	return fault("epoll_ctl", op, fd) ? -1 : get_epoll_ctl()(ep, op, fd, ev);
}

REAL(int, pipe2, int *, int)
int pipe2(int fds[2], int flags)
{
	return fault("pipe2", 0, -1) ? -1 : get_pipe2()(fds, flags);
}

REAL(ssize_t, splice, int, loff_t *, int, loff_t *, size_t, unsigned int)
ssize_t splice(int in, loff_t *off_in, int out, loff_t *off_out, size_t len, unsigned int flags)
{
	return fault("splice", in, in) ? -1 : get_splice()(in, off_in, out, off_out, len, flags);
}

REAL(ssize_t, read, int, void *, size_t)
ssize_t read(int fd, void *buf, size_t len)
{
	return fault("read", fd, fd) ? -1 : get_read()(fd, buf, len);
}

ssize_t write(int fd, const void *buf, size_t len)
{
	return fault("write", fd, fd) ? -1 : get_write()(fd, buf, len);
}

REAL(ssize_t, recv, int, void *, size_t, int)
ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	return fault("recv", fd, fd) ? -1 : get_recv()(fd, buf, len, flags);
}

REAL(ssize_t, send, int, const void *, size_t, int)
ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	return fault("send", fd, fd) ? -1 : get_send()(fd, buf, len, flags);
}

REAL(ssize_t, sendmsg, int, const struct msghdr *, int)
ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	return fault("sendmsg", fd, fd) ? -1 : get_sendmsg()(fd, m, flags);
}

REAL(int, recvmmsg, int, struct mmsghdr *, unsigned int, int, struct timespec *)
int recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags, struct timespec *t)
{
	return fault("recvmmsg", fd, fd) ? -1 : get_recvmmsg()(fd, v, n, flags, t);
}

REAL(int, sendmmsg, int, struct mmsghdr *, unsigned int, int)
int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	return fault("sendmmsg", fd, fd) ? -1 : get_sendmmsg()(fd, v, n, flags);
}

/* glibc's headers send fstat, open, fcntl, lstat and fopen to their
 * 64-bit names: those are the symbols a program calls. */
int fstat64(int fd, struct stat64 *st)
{
	return fault("fstat", fd, fd) ? -1 : get_fstat64()(fd, st);
}

REAL(int, shutdown, int, int)
int shutdown(int fd, int how)
{
	return fault("shutdown", fd, fd) ? -1 : get_shutdown()(fd, how);
}

REAL(int, epoll_create1, int)
int epoll_create1(int flags)
{
	return fault("epoll_create1", 0, -1) ? -1 : get_epoll_create1()(flags);
}

REAL(int, epoll_wait, int, struct epoll_event *, int, int)
int epoll_wait(int ep, struct epoll_event *ev, int n, int timeout)
{
	return fault("epoll_wait", ep, ep) ? -1 : get_epoll_wait()(ep, ev, n, timeout);
}

REAL(int, signalfd, int, const sigset_t *, int)
int signalfd(int fd, const sigset_t *mask, int flags)
{
	return fault("signalfd", fd, -1) ? -1 : get_signalfd()(fd, mask, flags);
}

REAL(int, sigprocmask, int, const sigset_t *, sigset_t *)
int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	return fault("sigprocmask", how, -1) ? -1 : get_sigprocmask()(how, set, old);
}

REAL(int, fcntl64, int, int, ...)
int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	return fault("fcntl", cmd, fd) ? -1 : get_fcntl64()(fd, cmd, arg);
}

REAL(int, open64, const char *, int, ...)
int open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = (mode_t)va_arg(ap, int);
	va_end(ap);
	return fault("open", flags, -1) ? -1 : get_open64()(path, flags, mode);
}

REAL(int, lstat64, const char *, struct stat64 *)
int lstat64(const char *path, struct stat64 *st)
{
	return fault("lstat", 0, -1) ? -1 : get_lstat64()(path, st);
}

REAL(FILE *, fopen64, const char *, const char *)
FILE *fopen64(const char *path, const char *mode)
{
	return fault("fopen", 0, -1) ? NULL : get_fopen64()(path, mode);
}

REAL(int, chown, const char *, uid_t, gid_t)
int chown(const char *path, uid_t uid, gid_t gid)
{
	return fault("chown", 0, -1) ? -1 : get_chown()(path, uid, gid);
}

REAL(ssize_t, getrandom, void *, size_t, unsigned int)
ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
	return fault("getrandom", 0, -1) ? -1 : get_getrandom()(buf, len, flags);
}

REAL(int, getpeername, int, __SOCKADDR_ARG, socklen_t *)
int getpeername(int fd, __SOCKADDR_ARG sa, socklen_t *len)
{
	return fault("getpeername", fd, fd) ? -1 : get_getpeername()(fd, sa, len);
}

/* _start calls this once every shared library is initialized: from here
 * on, the calls are the program's. main is wrapped to disarm at exit
 * before the libraries' destructors run (gcov writes its counters then,
 * with allocations of its own): an atexit handler registered from main
 * runs before the dynamic linker's, which __libc_start_main registered. */
typedef int (*main_fn)(int, char **, char **);

static void disarm(void)
{
	armed = false;
}

static main_fn real_main;

static int wrapped_main(int argc, char **argv, char **envp)
{
	atexit(disarm);
	armed = true;
	return real_main(argc, argv, envp);
}

REAL(int, __libc_start_main, main_fn, int, char **, void (*)(void), void (*)(void),
     void (*)(void), void *)
int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
		      void (*fini)(void), void (*rtld_fini)(void), void *stack_end);
int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
		      void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
	real_main = main;
	return get___libc_start_main()(wrapped_main, argc, argv, init, fini, rtld_fini, stack_end);
}

/* Allocation. Not under AddressSanitizer, whose allocator must come
 * first and initializes through malloc itself: the sweep of allocations
 * runs in the plain build. */
#ifndef __SANITIZE_ADDRESS__
/* Allocation. dlsym() may allocate before the real functions are known:
 * those few come from a static arena, and are never given back. */
static char arena[8192] __attribute__((aligned(16)));
static size_t arena_used;
static bool resolving;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);

static bool in_arena(const void *p)
{
	return (const char *)p >= arena && (const char *)p < arena + sizeof(arena);
}

static void *arena_alloc(size_t n)
{
	size_t at = (arena_used + 15) & ~(size_t)15;

	if (at + n > sizeof(arena))
		return NULL;
	arena_used = at + n;
	return arena + at; /* zeroed: static storage, never reused */
}

static bool resolve(void)
{
	if (real_free)
		return true;
	if (resolving)
		return false;
	resolving = true;
	void *sym;
	sym = dlsym(RTLD_NEXT, "malloc");
	memcpy(&real_malloc, &sym, sizeof(sym));
	sym = dlsym(RTLD_NEXT, "calloc");
	memcpy(&real_calloc, &sym, sizeof(sym));
	sym = dlsym(RTLD_NEXT, "realloc");
	memcpy(&real_realloc, &sym, sizeof(sym));
	sym = dlsym(RTLD_NEXT, "free");
	memcpy(&real_free, &sym, sizeof(sym));
	resolving = false;
	return real_free != NULL;
}

void *malloc(size_t n)
{
	if (!resolve())
		return arena_alloc(n);
	return fault("malloc", (long)n, -1) ? NULL : real_malloc(n);
}

void *calloc(size_t k, size_t n)
{
	if (!resolve())
		return arena_alloc(k * n);
	return fault("calloc", (long)(k * n), -1) ? NULL : real_calloc(k, n);
}

void *realloc(void *p, size_t n)
{
	if (!resolve())
		return NULL;
	if (in_arena(p)) {
		void *q = malloc(n);
		if (q)
			memcpy(q, p, n < (size_t)(arena + sizeof(arena) - (char *)p)
					     ? n : (size_t)(arena + sizeof(arena) - (char *)p));
		return q;
	}
	return fault("realloc", (long)n, -1) ? NULL : real_realloc(p, n);
}

void free(void *p)
{
	if (!p || in_arena(p))
		return;
	if (resolve())
		real_free(p);
}

#endif

/* With ECHOD_FAULTS_COUNT set, the number of calls of each FUNC in the
 * specs, at exit: how far a sweep has to go. */
__attribute__((destructor)) static void report(void)
{
	if (!getenv("ECHOD_FAULTS_COUNT"))
		return;
#ifdef __SANITIZE_ADDRESS__
	(void)!write(STDERR_FILENO, "inject: allocations not injected\n", 33);
#endif
	for (size_t i = 0; i < n_specs; i++) {
		char line[96];
		int len = snprintf(line, sizeof(line), "inject: %s calls %lu\n", specs[i].func,
				   specs[i].calls);
		if (len > 0)
			(void)!write(STDERR_FILENO, line, (size_t)len);
	}
}
