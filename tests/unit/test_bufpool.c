/* Unit tests of the buffer pool. */
#include <check.h>
#include <string.h>

#include "bufpool.h"
#include "check_main.h"

START_TEST(reuses_and_bounds)
{
	struct bufpool p;
	struct buf *b[4];

	bufpool_init(&p, 128, 2 * 128);
	for (int i = 0; i < 4; i++) {
		b[i] = bufpool_get(&p, 128);
		ck_assert_ptr_nonnull(b[i]);
		ck_assert_uint_eq(b[i]->cap, 128);
		ck_assert_uint_eq(b[i]->len, 0);
		ck_assert_uint_eq(b[i]->off, 0);
		memset(b[i]->data, 'x', 128); /* the whole capacity is usable */
	}
	for (int i = 0; i < 4; i++)
		bufpool_put(&p, b[i]);
	ck_assert_uint_eq(p.n_free, 2); /* no more kept than max_bytes holds */
	struct buf *again = bufpool_get(&p, 128);
	ck_assert(again == b[1] || again == b[0]);
	ck_assert_uint_eq(p.n_free, 1);
	again->len = 5;
	again->off = 3;
	bufpool_put(&p, again);
	again = bufpool_get(&p, 128);
	ck_assert_uint_eq(again->len, 0); /* comes back empty */
	ck_assert_uint_eq(again->off, 0);
	bufpool_put(&p, again);
	bufpool_clear(&p);
	ck_assert_uint_eq(p.n_free, 0);
}
END_TEST

START_TEST(other_sizes)
{
	struct bufpool p;

	bufpool_init(&p, 128, 8 * 128);
	struct buf *big = bufpool_get(&p, 4096);
	ck_assert_uint_eq(big->cap, 4096);
	bufpool_put(&p, big); /* not the pool's size: freed, not kept */
	ck_assert_uint_eq(p.n_free, 0);

	struct buf *b = bufpool_get(&p, 128);
	bufpool_put(&p, b);
	ck_assert_uint_eq(p.n_free, 1);
	bufpool_set_size(&p, 256); /* after a reload: old buffers go */
	ck_assert_uint_eq(p.n_free, 0);
	ck_assert_uint_eq(p.max_free, 4); /* the byte bound holds fewer of them */
	b = bufpool_get(&p, 256);
	ck_assert_uint_eq(b->cap, 256);
	bufpool_put(&p, b);
	ck_assert_uint_eq(p.n_free, 1);
	bufpool_set_size(&p, 256); /* a reload that keeps the size keeps them */
	ck_assert_uint_eq(p.n_free, 1);
	bufpool_clear(&p);
}
END_TEST

START_TEST(size_zero_keeps_nothing)
{
	struct bufpool p;

	bufpool_init(&p, 0, 1024);
	ck_assert_uint_eq(p.max_free, 0);
	struct buf *b = bufpool_get(&p, 64);
	ck_assert_ptr_nonnull(b);
	bufpool_put(&p, b);
	ck_assert_uint_eq(p.n_free, 0);
	bufpool_set_size(&p, 0);
	ck_assert_uint_eq(p.max_free, 0);
}
END_TEST

START_TEST(large_buffers_not_kept)
{
	struct bufpool p;

	bufpool_init(&p, 8 * 1024 * 1024, 1024 * 1024);
	struct buf *b = bufpool_get(&p, 8 * 1024 * 1024);
	ck_assert_ptr_nonnull(b);
	bufpool_put(&p, b);
	ck_assert_uint_eq(p.n_free, 0); /* larger than the byte bound: freed */
	bufpool_clear(&p);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("bufpool");
	TCase *t = tcase_create("bufpool");
	tcase_add_test(t, reuses_and_bounds);
	tcase_add_test(t, other_sizes);
	tcase_add_test(t, large_buffers_not_kept);
	tcase_add_test(t, size_zero_keeps_nothing);
	suite_add_tcase(s, t);
	return s;
}

CHECK_MAIN(suite)
