/* The training progress display: the whole run's progress with an ETA on one line redrawn
 * in place on a terminal (fitted to its width, never wrapping), or a plain line every few
 * seconds when stderr is a file or a pipe. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/progress.h"

/* A terminal redraw at most this often: faster is flicker nobody can read. */
#define TTY_REDRAW_S 0.1

int dc_cli_terminal_width(int fd) {
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    const char *cols = getenv("COLUMNS");
    if (cols) {
        char *end;
        const long n = strtol(cols, &end, 10);
        if (end != cols && !*end && n > 0 && n < 10000) return (int)n;
    }
    return 80;
}

void dc_cli_progress_init(dc_cli_progress *p, int fd, double every_s) {
    memset(p, 0, sizeof *p);
    p->fd = fd;
    p->tty = isatty(fd);
    p->every_s = every_s;
    p->t_start = dc_cli_now_s();
    p->t_last = -1e30;
}

/* "1:02:03" or "02:03" */
static void fmt_duration(double s, char *buf, size_t cap) {
    if (!(s >= 0) || s > 360000) {
        snprintf(buf, cap, "?");
        return;
    }
    const long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%02ld:%02ld", t / 60, t % 60);
}

size_t dc_cli_progress_format(char *buf, size_t cap, int width, const dc_train_progress *tp,
                              double loss, double elapsed_s) {
    if (cap == 0) return 0;
    const long total = (long)tp->epochs * tp->steps_per_epoch;
    const long done = (long)(tp->epoch - 1) * tp->steps_per_epoch + tp->step;
    const double frac = total > 0 ? (double)done / (double)total : 0.0;
    char el[32], eta[32], left[96], right[160];
    fmt_duration(elapsed_s, el, sizeof el);
    fmt_duration(tp->eta_s, eta, sizeof eta);
    snprintf(left, sizeof left, "%3d%%", (int)(100.0 * frac));
    snprintf(right, sizeof right, " epoch %d/%d step %d/%d loss %.4g %.0f img/s %s<%s", tp->epoch,
             tp->epochs, tp->step, tp->steps_per_epoch, loss, tp->images_per_s, el, eta);
    /* one column short of the width: writing the last column makes some terminals wrap */
    const int avail = width - 1;
    const int fixed = (int)strlen(left) + (int)strlen(right) + 2; /* the bar's "||" */
    int bar = avail - fixed;
    if (bar > 40) bar = 40;
    if (fixed - 2 > avail) /* narrow: the figures that matter most, shorter */
        snprintf(right, sizeof right, " %d/%d loss %.3g %s<%s", tp->epoch, tp->epochs, loss, el,
                 eta);
    size_t n;
    if (bar >= 8) {
        char b[48];
        const int fill = (int)(bar * frac);
        for (int i = 0; i < bar; i++)
            b[i] = i < fill ? '#' : '.';
        b[bar] = 0;
        n = (size_t)snprintf(buf, cap, "%s|%s|%s", left, b, right);
    } else {
        n = (size_t)snprintf(buf, cap, "%s%s", left, right);
    }
    if (n >= cap) n = cap - 1;
    /* a terminal narrower than the line: cut it, never wrap */
    if (avail >= 1 && n > (size_t)avail) n = (size_t)avail;
    buf[n] = 0;
    return n;
}

void dc_cli_progress_update(dc_cli_progress *p, const dc_train_progress *tp) {
    /* the loss shown is the mean over the steps since the last line */
    const long since = tp->global_step - p->last_global_step;
    const long steps = since > 0 && p->last_global_step > 0 ? since : 1;
    p->loss_sum += tp->loss * (double)steps;
    p->loss_steps += steps;
    p->last_global_step = tp->global_step;
    const double now = dc_cli_now_s();
    const int epoch_done = tp->step == tp->steps_per_epoch;
    if (p->tty ? now - p->t_last < TTY_REDRAW_S && !epoch_done : now - p->t_last < p->every_s)
        return;
    const double loss = p->loss_steps ? p->loss_sum / (double)p->loss_steps : tp->loss;
    char line[512];
    FILE *f = p->fd == 1 ? stdout : stderr;
    if (p->tty) {
        dc_cli_progress_format(line, sizeof line, dc_cli_terminal_width(p->fd), tp, loss,
                               now - p->t_start);
        /* \033[K clears what a longer earlier line left behind */
        fprintf(f, "\r%s\033[K", line);
        p->drawn = 1;
    } else {
        dc_cli_progress_format(line, sizeof line, 100000, tp, loss, now - p->t_start);
        fprintf(f, "%s\n", line);
    }
    fflush(f);
    p->t_last = now;
    p->loss_sum = 0;
    p->loss_steps = 0;
}

void dc_cli_progress_clear(dc_cli_progress *p) {
    if (!p->tty || !p->drawn) return;
    FILE *f = p->fd == 1 ? stdout : stderr;
    fputs("\r\033[K", f);
    fflush(f);
    p->drawn = 0;
}
