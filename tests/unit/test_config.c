/* Unit tests of the knob table and the file parser (the value parsers: test_config_values.c). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "config.h"
#include "log.h"

/* ---- the file ---- */

static char path[64];

static void write_file(const char *text)
{
	strcpy(path, "/tmp/echod-test-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static int load(const char *text, struct config *c, char *err)
{
	write_file(text);
	config_defaults(c);
	int r = config_load_file(c, path, false, err, CONFIG_ERROR_MAX);
	unlink(path);
	return r;
}

static void expect_error(const char *text, unsigned line, const char *msg)
{
	struct config c;
	char err[CONFIG_ERROR_MAX], want[CONFIG_ERROR_MAX];
	ck_assert_int_eq(load(text, &c, err), -EINVAL);
	snprintf(want, sizeof(want), "%s:%u: %s", path, line, msg);
	ck_assert_str_eq(err, want);
	/* A bad file leaves the configuration untouched. */
	ck_assert_uint_eq(c.backlog, 4096);
	ck_assert_str_eq(c.listen[0], "[::]:7");
}

/* ---- the table ---- */

START_TEST(defaults_match_contract)
{
	struct config c;
	config_defaults(&c);
	ck_assert_uint_eq(c.n_listen, 1);
	ck_assert_str_eq(c.listen[0], "[::]:7");
	ck_assert_uint_eq(c.backlog, 4096);
	ck_assert_uint_eq(c.buffer_size, 65536);
	ck_assert_uint_eq(c.max_connections, 0);
	ck_assert_uint_eq(c.idle_timeout_ms, 0);
	ck_assert_uint_eq(c.shutdown_timeout_ms, 5000);
	ck_assert_uint_eq(c.transform, TRANSFORM_NONE);
	ck_assert_uint_eq(c.reuse_port, 0);
	ck_assert_uint_eq(c.log_level, LOG_LEVEL_INFO);
	ck_assert_uint_eq(c.allow.n, 0);
	ck_assert_uint_eq(c.deny.n, 0);
	ck_assert_uint_eq(c.max_connections_per_source, 0);
	ck_assert_uint_eq(c.max_connection_time_ms, 0);
	ck_assert_uint_eq(c.udp_rate_per_source, 0);
	ck_assert_uint_eq(c.proxy_trusted.n, 2);
	ck_assert_int_eq(c.proxy_trusted.entries[0].family, AF_INET);
	ck_assert_uint_eq(c.proxy_trusted.entries[0].prefix, 8);
	ck_assert_int_eq(c.proxy_trusted.entries[1].family, AF_INET6);
	ck_assert_uint_eq(c.proxy_trusted.entries[1].prefix, 128);
	ck_assert_str_eq(c.metrics, "");
	ck_assert_uint_eq(c.defer_accept_s, 1);
	ck_assert_uint_eq(c.tcp_keepalive_s, 60);
	ck_assert(!c.free_bind);
	ck_assert_uint_eq(c.unix_mode, 0666);
	ck_assert_str_eq(c.unix_group, "");
	ck_assert(!c.log_connections);
}
END_TEST

START_TEST(every_knob_has_a_default_and_doc)
{
	for (size_t i = 0; i < config_n_knobs; i++) {
		struct config c;
		config_defaults(&c);
		/* No default text: a list that starts empty, or a value that
		 * starts unset. */
		if (!config_knobs[i].def)
			ck_assert_uint_eq(config_knobs[i].type->count((const char *)&c + config_knobs[i].offset), 0);
		ck_assert_ptr_nonnull(config_knobs[i].doc);
		ck_assert_ptr_eq(config_find_knob(config_knobs[i].name), &config_knobs[i]);
		/* The kind of knob writes a field of its own size. */
		ck_assert_msg(config_knobs[i].size == config_knobs[i].type->field_size, "%s: field of %zu bytes, kind writes %zu",
			      config_knobs[i].name, config_knobs[i].size, config_knobs[i].type->field_size);
		ck_assert_uint_le(config_knobs[i].offset + config_knobs[i].size, sizeof(struct config));
	}
	ck_assert_ptr_null(config_find_knob("nope"));
}
END_TEST

START_TEST(set_messages)
{
	struct config c;
	char err[CONFIG_ERROR_MAX];
	config_defaults(&c);
	ck_assert_int_eq(config_set(&c, config_find_knob("backlog"), "0", err, sizeof(err)), -ERANGE);
	ck_assert_str_eq(err, "value out of range for 'backlog': '0' (expected a whole number from 1 to 65535)");
	ck_assert_int_eq(config_set(&c, config_find_knob("backlog"), "ten", err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "invalid value for 'backlog': 'ten' (expected a whole number from 1 to 65535)");
	ck_assert_int_eq(config_set(&c, config_find_knob("buffer_size"), "1G", err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "invalid value for 'buffer_size': '1G' (expected a size in bytes, optionally with suffix K or M, from 64 to 64M)");
	ck_assert_int_eq(config_set(&c, config_find_knob("reuse_port"), "maybe", err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "invalid value for 'reuse_port': 'maybe' (expected yes, no, true, false, on, off, 1 or 0)");
	ck_assert_int_eq(config_set(&c, config_find_knob("listen"), "1.2.3:7", err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "invalid value for 'listen': invalid IPv4 address '1.2.3'");
	ck_assert_int_eq(config_set(&c, config_find_knob("listen"), " 7", err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "invalid value for 'listen': ' 7' (white space around the value)");
	ck_assert_int_eq(config_set(&c, config_find_knob("transform"), "upper ", err, sizeof(err)), -EINVAL);
	ck_assert_uint_eq(c.backlog, 4096);
}
END_TEST

START_TEST(did_you_mean)
{
	ck_assert_str_eq(config_nearest_knob("bufer_size")->name, "buffer_size");
	ck_assert_str_eq(config_nearest_knob("Backlog")->name, "backlog");
	ck_assert_str_eq(config_nearest_knob("loglevel")->name, "log_level");
	ck_assert_str_eq(config_nearest_knob("max_connection")->name, "max_connections");
	ck_assert_ptr_null(config_nearest_knob("colour"));
	ck_assert_ptr_null(config_nearest_knob(""));
	ck_assert_ptr_null(config_nearest_knob("a"));
}
END_TEST

START_TEST(new_keys)
{
	struct config c;
	char err[CONFIG_ERROR_MAX];
	ck_assert_int_eq(load("allow = 10.0.0.0/8\n"
			      "allow = ::1\n"
			      "deny = 10.9.0.0/16\n"
			      "max_connections_per_source = 10000000\n"
			      "max_connection_time = 1h\n", &c, err), -EINVAL);
	ck_assert_int_eq(load("allow = 10.0.0.0/8\n"
			      "allow = ::1\n"
			      "deny = 10.9.0.0/16\n"
			      "max_connections_per_source = 10000000\n"
			      "max_connection_time = 90s\n"
			      "udp_rate_per_source = 100\n"
			      "proxy_trusted = 10.0.0.1\n"
			      "metrics = 127.0.0.1:9100\n"
			      "defer_accept = 1ms\n"
			      "tcp_keepalive = 1500ms\n"
			      "free_bind = yes\n"
			      "unix_mode = 0660\n"
			      "unix_group = 1000\n"
			      "log_connections = true\n", &c, err), 0);
	ck_assert_uint_eq(c.allow.n, 2);
	ck_assert_uint_eq(c.deny.n, 1);
	ck_assert_uint_eq(c.max_connections_per_source, 10000000);
	ck_assert_uint_eq(c.max_connection_time_ms, 90000);
	ck_assert_uint_eq(c.udp_rate_per_source, 100);
	ck_assert_uint_eq(c.proxy_trusted.n, 1); /* the file's list replaces the default */
	ck_assert_str_eq(c.metrics, "127.0.0.1:9100");
	ck_assert_uint_eq(c.defer_accept_s, 1);   /* rounded up */
	ck_assert_uint_eq(c.tcp_keepalive_s, 2);  /* rounded up */
	ck_assert(c.free_bind);
	ck_assert_uint_eq(c.unix_mode, 0660);
	ck_assert_str_eq(c.unix_group, "1000");
	ck_assert(c.log_connections);
}
END_TEST

START_TEST(new_key_errors)
{
	expect_error("allow = 10.0.0.1/8\n", 1,
		     "invalid value for 'allow': host bits set past the prefix length in '10.0.0.1/8'");
	expect_error("deny = example.com\n", 1,
		     "invalid value for 'deny': invalid address 'example.com' (expected an IPv4 or IPv6 address, optionally /PREFIXLEN)");
	expect_error("max_connections_per_source = 10000001\n", 1,
		     "value out of range for 'max_connections_per_source': '10000001' (expected a whole number from 0 to 10000000)");
	expect_error("udp_rate_per_source = -1\n", 1,
		     "invalid value for 'udp_rate_per_source': '-1' (expected a whole number from 0 to 10000000)");
	expect_error("max_connection_time = 43201min\n", 1,
		     "value out of range for 'max_connection_time': '43201min' (expected seconds, or a number with suffix ms, s or min, from 0 to 43200min)");
	expect_error("defer_accept = 601\n", 1,
		     "value out of range for 'defer_accept': '601' (expected seconds, or a number with suffix ms, s or min, from 0 to 10min)");
	expect_error("tcp_keepalive = 32768\n", 1,
		     "value out of range for 'tcp_keepalive': '32768' (expected seconds, or a number with suffix ms, s or min, from 0 to 32767s)");
	expect_error("metrics = udp:127.0.0.1:9100\n", 1,
		     "invalid value for 'metrics': 'udp:127.0.0.1:9100' (expected a TCP or unix: address, without udp: or proxy:)");
	expect_error("metrics = 1\nmetrics = 2\n", 2, "'metrics' is already set on line 1");
	expect_error("unix_mode = 0778\n", 1,
		     "invalid value for 'unix_mode': '0778' (expected an octal mode from 0000 to 0777)");
	expect_error("unix_mode = 1777\n", 1,
		     "value out of range for 'unix_mode': '1777' (expected an octal mode from 0000 to 0777)");
	expect_error("unix_group = -x\n", 1,
		     "invalid value for 'unix_group': '-x' (expected a group name of at most 32 characters, or a group number)");
	expect_error("unix_group = 4294967295\n", 1,
		     "value out of range for 'unix_group': '4294967295' (expected a group name of at most 32 characters, or a group number)");
	expect_error("unix_group = a b\n", 1,
		     "invalid value for 'unix_group': 'a b' (expected a group name of at most 32 characters, or a group number)");
	expect_error("free_bind = maybe\n", 1,
		     "invalid value for 'free_bind': 'maybe' (expected yes, no, true, false, on, off, 1 or 0)");
}
END_TEST

/* Values past what a field can hold, and lists past their bound. */
START_TEST(bounds_of_values)
{
	char *text = malloc(300 * 32), *p = text;

	struct config c;
	char err[CONFIG_ERROR_MAX];

	config_defaults(&c);
	/* A number that fits, times a suffix that makes it overflow. */
	ck_assert_int_eq(config_set(&c, config_find_knob("buffer_size"), "18000000000000M", err, sizeof(err)),
			 -ERANGE);
	ck_assert_str_eq(err, "value out of range for 'buffer_size': '18000000000000M' (expected a size in bytes, optionally with suffix K or M, from 64 to 64M)");
	/* The file refuses an empty value before a parser sees it; the parser
	 * refuses it as well. */
	ck_assert_int_eq(config_set(&c, config_find_knob("unix_mode"), "", err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "invalid value for 'unix_mode': '' (expected an octal mode from 0000 to 0777)");
	expect_error("metrics = 127.0.0.1\n", 1,
		     "invalid value for 'metrics': invalid port '127.0.0.1' (expected 0 to 65535)");
	char line[400];
	snprintf(line, sizeof(line), "metrics = unix:/%0300d\n", 0);
	expect_error(line, 1, "invalid value for 'metrics': address longer than 127 characters");
	ck_assert_ptr_nonnull(text);
	for (int i = 0; i <= CIDR_LIST_MAX; i++)
		p += sprintf(p, "allow = 10.%d.%d.0/24\n", i / 256, i % 256);
	expect_error(text, CIDR_LIST_MAX + 1, "too many 'allow' entries (at most 256)");
	free(text);
}
END_TEST

START_TEST(group_names)
{
	struct config c;
	char err[CONFIG_ERROR_MAX];
	static const char *const good[] = { "echod", "_echod", "Echo.d-1", "machine$", "0", "4294967294",
					    "a2345678901234567890123456789012" };
	static const char *const bad[] = { "1abc", "-echod", "ec$hod", "$", "a23456789012345678901234567890123",
					   "gr\xc3\xbcn" };
	config_defaults(&c);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(config_set(&c, config_find_knob("unix_group"), good[i], err, sizeof(err)) == 0,
			      "%s: %s", good[i], err);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(config_set(&c, config_find_knob("unix_group"), bad[i], err, sizeof(err)) < 0, "%s",
			      bad[i]);
}
END_TEST

START_TEST(listen_limit)
{
	struct config c;
	char err[CONFIG_ERROR_MAX];
	config_defaults(&c);
	c.n_listen = 0;
	for (int i = 0; i < CONFIG_MAX_LISTEN; i++)
		ck_assert_int_eq(config_set(&c, config_find_knob("listen"), "7", err, sizeof(err)), 0);
	ck_assert_int_eq(config_set(&c, config_find_knob("listen"), "7", err, sizeof(err)), -ENOSPC);
	ck_assert_str_eq(err, "too many 'listen' addresses (at most 64)");
}
END_TEST

START_TEST(file_full)
{
	struct config c;
	char err[CONFIG_ERROR_MAX];
	ck_assert_int_eq(load("# comment\n"
			      "; also a comment\n"
			      "\n"
			      "   listen   =   127.0.0.1:7007   \n"
			      "listen = [::1]:7007\n"
			      "listen=udp:127.0.0.1:7007\n"
			      "listen = unix:/run/echod.sock\n"
			      "backlog = 128\n"
			      "buffer_size = 1M\n"
			      "max_connections = 1000\n"
			      "idle_timeout = 30s\n"
			      "shutdown_timeout = 250ms\n"
			      "transform = upper\n"
			      "reuse_port = yes\n"
			      "log_level = debug\n",
			      &c, err), 0);
	ck_assert_uint_eq(c.n_listen, 4);
	ck_assert_str_eq(c.listen[0], "127.0.0.1:7007");
	ck_assert_str_eq(c.listen[3], "unix:/run/echod.sock");
	ck_assert_uint_eq(c.backlog, 128);
	ck_assert_uint_eq(c.buffer_size, 1u << 20);
	ck_assert_uint_eq(c.max_connections, 1000);
	ck_assert_uint_eq(c.idle_timeout_ms, 30000);
	ck_assert_uint_eq(c.shutdown_timeout_ms, 250);
	ck_assert_uint_eq(c.transform, TRANSFORM_UPPER);
	ck_assert_uint_eq(c.reuse_port, 1);
	ck_assert_uint_eq(c.log_level, LOG_LEVEL_DEBUG);
}
END_TEST

START_TEST(file_no_trailing_newline_and_crlf)
{
	struct config c;
	char err[CONFIG_ERROR_MAX];
	ck_assert_int_eq(load("backlog = 10\r\nbuffer_size = 64", &c, err), 0);
	ck_assert_uint_eq(c.backlog, 10);
	ck_assert_uint_eq(c.buffer_size, 64);
}
END_TEST

START_TEST(file_errors)
{
	expect_error("bogus = 1\n", 1, "unknown key 'bogus'");
	expect_error("bufer_size = 1K\n", 1, "unknown key 'bufer_size' (did you mean 'buffer_size'?)");
	expect_error("\n# x\nbacklog = 1\nbacklog = 2\n", 4, "'backlog' is already set on line 3");
	expect_error("backlog\n", 1, "expected 'key = value', got 'backlog'");
	expect_error(" = 4\n", 1, "missing key before '='");
	expect_error("backlog =\n", 1, "missing value for 'backlog'");
	expect_error("backlog = 70000\n", 1,
		     "value out of range for 'backlog': '70000' (expected a whole number from 1 to 65535)");
	expect_error("idle_timeout = 5h\n", 1,
		     "invalid value for 'idle_timeout': '5h' (expected seconds, or a number with suffix ms, s or min, from 0 to 43200min)");
	expect_error("transform = lower\n", 1,
		     "invalid value for 'transform': 'lower' (expected none or upper)");
	expect_error("log_level = loud\n", 1,
		     "invalid value for 'log_level': 'loud' (expected err, warning, notice, info or debug)");
	expect_error("listen = 127.0.0.1:7\nlisten = 127.0.0.1:99999\n", 2,
		     "invalid value for 'listen': invalid port '99999' (expected 0 to 65535)");
	expect_error("backlog = 10 # inline comments are not comments\n", 1,
		     "invalid value for 'backlog': '10 # inline comments are not comments' (inline comments are not allowed: a comment must be on a line of its own)");
	expect_error("listen = unix:/run/a\t#b\n", 1,
		     "invalid value for 'listen': 'unix:/run/a\t#b' (inline comments are not allowed: a comment must be on a line of its own)");
}
END_TEST

START_TEST(file_missing)
{
	struct config c;
	char err[CONFIG_ERROR_MAX];
	config_defaults(&c);
	ck_assert_int_eq(config_load_file(&c, "/nonexistent/echod.conf", true, err, sizeof(err)), 0);
	ck_assert_int_eq(config_load_file(&c, "/nonexistent/echod.conf", false, err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "/nonexistent/echod.conf: cannot open: No such file or directory");
	ck_assert_int_eq(config_load_file(&c, "/", false, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "/: not a regular file");
}
END_TEST

START_TEST(file_not_regular)
{
	struct config c;
	char err[CONFIG_ERROR_MAX], fifo[64];
	config_defaults(&c);
	ck_assert_int_eq(config_load_file(&c, "/dev/zero", false, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "/dev/zero: not a regular file");
	/* A FIFO without a writer would block open() or read() without O_NONBLOCK. */
	strcpy(fifo, "/tmp/echod-test-fifo-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(fifo));
	strcat(fifo, "/f");
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(config_load_file(&c, fifo, false, err, sizeof(err)), -EINVAL);
	unlink(fifo);
	*strrchr(fifo, '/') = '\0';
	rmdir(fifo);
	ck_assert_uint_eq(c.backlog, 4096);
}
END_TEST

START_TEST(file_too_large)
{
	struct config c;
	char err[CONFIG_ERROR_MAX], want[CONFIG_ERROR_MAX];
	char *text = malloc(CONFIG_FILE_MAX + 2);
	/* Exactly the limit is read; one byte more is refused. */
	memset(text, '\n', CONFIG_FILE_MAX + 1);
	text[CONFIG_FILE_MAX] = '\0';
	ck_assert_int_eq(load(text, &c, err), 0);
	text[CONFIG_FILE_MAX] = '\n';
	text[CONFIG_FILE_MAX + 1] = '\0';
	ck_assert_int_eq(load(text, &c, err), -EFBIG);
	snprintf(want, sizeof(want), "%s: larger than 1M", path);
	ck_assert_str_eq(err, want);
	free(text);
}
END_TEST

START_TEST(parse_buffer_not_terminated)
{
	struct config c;
	char err[CONFIG_ERROR_MAX];
	/* The buffer is not a C string: the length bounds it. */
	static const char text[] = "backlog = 12345";
	config_defaults(&c);
	ck_assert_int_eq(config_parse_buffer(&c, "mem", text, 12, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.backlog, 12);
	ck_assert_int_eq(config_parse_buffer(&c, "mem", "bogus = 1", 9, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "mem:1: unknown key 'bogus'");
	ck_assert_int_eq(config_parse_buffer(&c, "mem", "", 0, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.backlog, 12);
}
END_TEST

/* Files with bytes a C string or an editor gets wrong: the buffer is
 * given with its length, so that NUL bytes reach the parser. */
static int load_bytes(const char *text, size_t len, struct config *c, char *err)
{
	config_defaults(c);
	return config_parse_buffer(c, "f", text, len, err, CONFIG_ERROR_MAX);
}

START_TEST(file_nul_byte)
{
	static const char text[] = "# x\nbacklog = 10\0garbage\n";
	struct config c;
	char err[CONFIG_ERROR_MAX];
	ck_assert_int_eq(load_bytes(text, sizeof(text) - 1, &c, err), -EINVAL);
	ck_assert_str_eq(err, "f:2: NUL byte in the line");
	ck_assert_uint_eq(c.backlog, 4096);
	/* Also in a comment: it is the file that is broken. */
	ck_assert_int_eq(load_bytes("#\0\n", 3, &c, err), -EINVAL);
	ck_assert_str_eq(err, "f:1: NUL byte in the line");
}
END_TEST

START_TEST(file_byte_order_mark)
{
	static const char text[] = "\xef\xbb\xbf" "backlog = 10\n";
	struct config c;
	char err[CONFIG_ERROR_MAX];
	ck_assert_int_eq(load_bytes(text, sizeof(text) - 1, &c, err), 0);
	ck_assert_uint_eq(c.backlog, 10);
	/* Only at the start of the file. */
	static const char later[] = "backlog = 10\n\xef\xbb\xbf" "listen = 7\n";
	ck_assert_int_eq(load_bytes(later, sizeof(later) - 1, &c, err), -EINVAL);
	ck_assert_str_eq(err, "f:2: unknown key '\xef\xbb\xbflisten'");
}
END_TEST

START_TEST(control_characters)
{
	struct config c;
	char err[CONFIG_ERROR_MAX];
	config_defaults(&c);
	ck_assert_int_eq(config_set(&c, config_find_knob("listen"), "unix:/run/x\nbuffer_size = 64M", err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "invalid value for 'listen': control character 0x0a");
	ck_assert_int_eq(config_set(&c, config_find_knob("transform"), "upper\x7f", err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "invalid value for 'transform': control character 0x7f");
	expect_error("listen = unix:/run/\x1b[31m\n", 1, "invalid value for 'listen': control character 0x1b");
	expect_error("back\vlog = 1\n", 1, "unknown key 'back\\x0blog' (did you mean 'backlog'?)");
	expect_error("back\x01log\n", 1, "expected 'key = value', got 'back\\x01log'");
	/* A CR before the newline is white space (CRLF files). */
	ck_assert_int_eq(load_bytes("backlog = 9\r\n", 13, &c, err), 0);
	ck_assert_uint_eq(c.backlog, 9);
}
END_TEST

/* How messages show what was typed: control bytes and DEL escaped, tabs
 * kept, cut at max bytes or where the buffer ends, never mid-escape. */
START_TEST(quoting)
{
	char buf[16];

	config_quote(buf, sizeof(buf), "a\tb\x7f\x01", 100);
	ck_assert_str_eq(buf, "a\tb\\x7f\\x01");
	config_quote(buf, sizeof(buf), "abcdef", 3);
	ck_assert_str_eq(buf, "abc");
	config_quote(buf, sizeof(buf), "0123456789abcdefghij", 100);
	ck_assert_str_eq(buf, "0123456789a"); /* room kept for one escape */
	config_quote(buf, 8, "ab\x02\x03", 100);
	ck_assert_str_eq(buf, "ab\\x02");
}
END_TEST

/* '#' after white space starts a comment, which a value may not hold;
 * a '#' inside a word, or as the value's first byte, is the value's. */
START_TEST(hash_in_values)
{
	expect_error("transform = upper # shout\n", 1,
		     "invalid value for 'transform': 'upper # shout' (inline comments are not allowed: a comment must be on a line of its own)");
	expect_error("transform = #upper\n", 1,
		     "invalid value for 'transform': '#upper' (expected none or upper)");
	expect_error("transform = up#per\n", 1,
		     "invalid value for 'transform': 'up#per' (expected none or upper)");
}
END_TEST

START_TEST(print_every_key)
{
	struct config c;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	config_defaults(&c);
	config_print(&c, f);
	fclose(f);
	ck_assert_str_eq(text, "listen = [::]:7\n"
			       "backlog = 4096\n"
			       "buffer_size = 64K\n"
			       "max_connections = 0\n"
			       "idle_timeout = 0\n"
			       "shutdown_timeout = 5s\n"
			       "transform = none\n"
			       "reuse_port = no\n"
			       "log_level = info\n"
			       "# allow =\n"
			       "# deny =\n"
			       "max_connections_per_source = 0\n"
			       "max_connection_time = 0\n"
			       "udp_rate_per_source = 0\n"
			       "proxy_trusted = 127.0.0.0/8\n"
			       "proxy_trusted = ::1\n"
			       "# metrics =\n"
			       "defer_accept = 1s\n"
			       "tcp_keepalive = 1min\n"
			       "free_bind = no\n"
			       "unix_mode = 0666\n"
			       "# unix_group =\n"
			       "log_connections = no\n");
	free(text);
}
END_TEST

START_TEST(printed_config_parses_back)
{
	struct config a, b;
	char err[CONFIG_ERROR_MAX];
	char *text = NULL;
	size_t len = 0;
	ck_assert_int_eq(load("listen = 1\nlisten = unix:@x\nlisten = proxy:unix:/run/lb.sock\nbuffer_size = 65\n"
			      "idle_timeout = 1500ms\nreuse_port = on\nallow = 10.0.0.0/8\nallow = 2001:db8::/32\n"
			      "deny = 10.1.0.0/16\nproxy_trusted = 192.0.2.1\nmetrics = unix:/run/m.sock\n"
			      "defer_accept = 1500ms\ntcp_keepalive = 0\nunix_mode = 600\nunix_group = echod\n"
			      "max_connection_time = 2min\nlog_connections = yes\nfree_bind = on\n",
			      &a, err), 0);
	FILE *f = open_memstream(&text, &len);
	config_print(&a, f);
	fclose(f);
	ck_assert_int_eq(load(text, &b, err), 0);
	ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
	free(text);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("config");
	TCase *t = tcase_create("table");
	tcase_add_test(t, defaults_match_contract);
	tcase_add_test(t, every_knob_has_a_default_and_doc);
	tcase_add_test(t, set_messages);
	tcase_add_test(t, listen_limit);
	tcase_add_test(t, did_you_mean);
	tcase_add_test(t, new_keys);
	tcase_add_test(t, new_key_errors);
	tcase_add_test(t, bounds_of_values);
	tcase_add_test(t, quoting);
	tcase_add_test(t, hash_in_values);
	tcase_add_test(t, group_names);
	suite_add_tcase(s, t);
	t = tcase_create("file");
	tcase_add_test(t, file_full);
	tcase_add_test(t, file_no_trailing_newline_and_crlf);
	tcase_add_test(t, file_errors);
	tcase_add_test(t, file_missing);
	tcase_add_test(t, file_not_regular);
	tcase_add_test(t, file_too_large);
	tcase_add_test(t, parse_buffer_not_terminated);
	tcase_add_test(t, file_nul_byte);
	tcase_add_test(t, file_byte_order_mark);
	tcase_add_test(t, control_characters);
	tcase_add_test(t, print_every_key);
	tcase_add_test(t, printed_config_parses_back);
	suite_add_tcase(s, t);
	return s;
}

CHECK_MAIN(suite)
