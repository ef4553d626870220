/* Chart axes and the SVG chart: round ticks (1-2-5 steps) checked against values worked out
 * by hand, log axes, labels printed exactly, and the SVG's content. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconv/report.h"
#include "testutil.h"

static void expect_ticks(const double *got, int n, const double *want, int m) {
    if (n != m) {
        for (int i = 0; i < n; i++)
            print_message("  tick %d: %.17g\n", i, got[i]);
        fail_msg("%d ticks, expected %d", n, m);
    }
    for (int i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > 1e-12 * fmax(1.0, fabs(want[i])))
            fail_msg("tick %d is %.17g, expected %.17g", i, got[i], want[i]);
}

static void test_linear_ticks(void **state) {
    (void)state;
    double t[64];
    int dec = -7;
    /* the loss axis 0.3484 .. 0.5807: range 0.2323 over 4 gaps is 0.058, the next
     * 1-2-5 step is 0.1, and the axis widens to 0.3 .. 0.6 */
    int n = dc_chart_ticks(0.3484, 0.5807, 5, 0, t, 64, &dec);
    expect_ticks(t, n, (const double[]){0.3, 0.4, 0.5, 0.6}, 4);
    assert_int_equal(dec, 1);
    /* epochs 1 .. 301 with at most 8 ticks: 300 / 7 = 42.9 -> 50; 0 .. 350 */
    n = dc_chart_ticks(1, 301, 8, 1, t, 64, &dec);
    expect_ticks(t, n, (const double[]){0, 50, 100, 150, 200, 250, 300, 350}, 8);
    assert_int_equal(dec, 0);
    /* three epochs: the step would be 0.5, whole numbers make it 1 */
    n = dc_chart_ticks(1, 3, 8, 1, t, 64, &dec);
    expect_ticks(t, n, (const double[]){1, 2, 3}, 3);
    assert_int_equal(dec, 0);
    /* across zero: 0.034 / 4 = 0.0085 -> 0.01 */
    n = dc_chart_ticks(-0.013, 0.021, 5, 0, t, 64, &dec);
    expect_ticks(t, n, (const double[]){-0.02, -0.01, 0, 0.01, 0.02, 0.03}, 6);
    assert_int_equal(dec, 2);
    /* a 2 step: 0 .. 7 over 5 gaps is 1.4 -> 2 */
    n = dc_chart_ticks(0, 7, 6, 0, t, 64, &dec);
    expect_ticks(t, n, (const double[]){0, 2, 4, 6, 8}, 5);
    /* a 5 step: 0 .. 180 over 5 gaps is 36 -> 50 */
    n = dc_chart_ticks(0, 180, 6, 0, t, 64, &dec);
    expect_ticks(t, n, (const double[]){0, 50, 100, 150, 200}, 5);
    /* one value: widened by 10 % of it, 4.5 .. 5.5 in steps of 0.5 */
    n = dc_chart_ticks(5, 5, 5, 0, t, 64, &dec);
    expect_ticks(t, n, (const double[]){4.5, 5, 5.5}, 3);
    assert_int_equal(dec, 1);
    /* reversed bounds are the same axis; nothing for non-finite input */
    n = dc_chart_ticks(0.5807, 0.3484, 5, 0, t, 64, &dec);
    expect_ticks(t, n, (const double[]){0.3, 0.4, 0.5, 0.6}, 4);
    assert_int_equal(dc_chart_ticks(NAN, 1, 5, 0, t, 64, &dec), 0);
    assert_int_equal(dc_chart_ticks(0, INFINITY, 5, 0, t, 64, &dec), 0);
}

static void test_log_ticks(void **state) {
    (void)state;
    double t[64];
    /* two decades: 1, 2, 5 per decade from the largest <= 0.03 to the smallest >= 0.8 */
    int n = dc_chart_log_ticks(0.03, 0.8, t, 64);
    expect_ticks(t, n, (const double[]){0.02, 0.05, 0.1, 0.2, 0.5, 1}, 6);
    /* six decades: the powers of ten */
    n = dc_chart_log_ticks(1e-5, 10, t, 64);
    expect_ticks(t, n, (const double[]){1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10}, 7);
    /* twelve decades: every second power, from an even exponent */
    n = dc_chart_log_ticks(1e-9, 1e3, t, 64);
    expect_ticks(t, n, (const double[]){1e-10, 1e-8, 1e-6, 1e-4, 1e-2, 1, 1e2, 1e4}, 8);
    /* within one 1-2-5 interval: the linear round ticks */
    n = dc_chart_log_ticks(0.2, 0.5, t, 64);
    expect_ticks(t, n, (const double[]){0.2, 0.3, 0.4, 0.5}, 4);
    n = dc_chart_log_ticks(0.35, 0.6, t, 64);
    expect_ticks(t, n, (const double[]){0.35, 0.4, 0.45, 0.5, 0.55, 0.6}, 6);
    assert_int_equal(dc_chart_log_ticks(0, 1, t, 64), 0);
    assert_int_equal(dc_chart_log_ticks(-1, 1, t, 64), 0);
}

static void test_tick_labels(void **state) {
    (void)state;
    char b[48];
    dc_chart_tick_label(0.1 * 3, 1, b, sizeof b); /* 0.30000000000000004 */
    assert_string_equal(b, "0.3");
    dc_chart_tick_label(-0.0, 2, b, sizeof b);
    assert_string_equal(b, "0.00");
    dc_chart_tick_label(250, 0, b, sizeof b);
    assert_string_equal(b, "250");
    dc_chart_tick_label(0.05, -1, b, sizeof b);
    assert_string_equal(b, "0.05");
    dc_chart_tick_label(1e-5, -1, b, sizeof b);
    assert_string_equal(b, "1e-05");
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_svg_chart(void **state) {
    (void)state;
    const double x[5] = {1, 2, 3, 4, 5};
    const double train[5] = {0.58, 0.47, 0.41, 0.37, 0.35};
    const double val[5] = {0.6, 0.5, 0.45, 0.46, NAN}; /* a gap: no line through it */
    const dc_series s[2] = {{"train", x, train, 5}, {"validation", x, val, 5}};
    dc_chart c = {720, 320, "Loss & more", "epoch", "loss", s, 2, 1, 1, 3, "best epoch 3"};
    dc_error err = {0};
    char *svg = dc_chart_svg(&c, &err);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "<svg "));
    assert_non_null(strstr(svg, "</svg>"));
    assert_non_null(strstr(svg, "Loss &amp; more")); /* escaped */
    assert_non_null(strstr(svg, "loss (log scale)"));
    assert_non_null(strstr(svg, "best epoch 3"));
    assert_non_null(strstr(svg, "stroke-dasharray")); /* the marker */
    assert_int_equal(count(svg, "<polyline"), 2);
    /* y: 0.35 .. 0.6 has only 0.2, 0.5, 1 as 1-2-5 log ticks: the linear ones instead,
     * 0.25 / 5 = 0.05 -> 0.35, 0.4, ..., 0.6 */
    for (int i = 0; i < 6; i++) {
        char lab[32];
        snprintf(lab, sizeof lab, ">%g</text>", 0.35 + 0.05 * i);
        if (!strstr(svg, lab)) fail_msg("no y tick %s", lab);
    }
    /* x: epochs 1 .. 5 in whole steps */
    for (int e = 1; e <= 5; e++) {
        char lab[32];
        snprintf(lab, sizeof lab, ">%d</text>", e);
        assert_non_null(strstr(svg, lab));
    }
    /* no coordinate or label from the NaN ("dominant-baseline" holds the letters) */
    for (const char *const *bad = (const char *const[]){"\"nan", "\"-nan", ",nan", "nan,", ">nan",
                                                        "\"inf", ",inf", "inf,", ">inf", NULL};
         *bad; bad++)
        if (strstr(svg, *bad)) fail_msg("the SVG holds '%s'", *bad);
    free(svg);
    /* no data yet is a chart that says so; a bad size is an error */
    dc_chart empty = {400, 200, NULL, "epoch", NULL, NULL, 0, 0, 1, NAN, NULL};
    svg = dc_chart_svg(&empty, &err);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "no data yet"));
    free(svg);
    empty.width = 10;
    assert_null(dc_chart_svg(&empty, &err));
    assert_int_equal(err.status, DC_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_ticks),
        cmocka_unit_test(test_log_ticks),
        cmocka_unit_test(test_tick_labels),
        cmocka_unit_test(test_svg_chart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
