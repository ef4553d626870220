/* The training progress display (host/cli/progress.c). */
#ifndef DECONV_CLI_PROGRESS_H
#define DECONV_CLI_PROGRESS_H

#include <stddef.h>

#include "cli/cli.h"
#include "deconv/train.h"

/* Plain lines at most this often when the output is not a terminal (--progress-every). */
#define DC_PROGRESS_EVERY_S 10.0

typedef struct dc_cli_progress {
    int fd, tty, drawn;
    double every_s;         /* plain-line period (not a terminal); 0: every report */
    double t_start, t_last; /* monotonic seconds */
    double loss_sum;        /* since the last line */
    long loss_steps, last_global_step;
} dc_cli_progress;

/* Columns of the terminal on fd (TIOCGWINSZ), else $COLUMNS, else 80. */
int dc_cli_terminal_width(int fd);
void dc_cli_progress_init(dc_cli_progress *p, int fd, double every_s);
/* One report of the trainer: redraw the line in place (a terminal), or print a plain line
 * when every_s has passed since the last one. */
void dc_cli_progress_update(dc_cli_progress *p, const dc_train_progress *tp);
/* Erase the line in place before another message is printed (a terminal only). */
void dc_cli_progress_clear(dc_cli_progress *p);
/* The line: "37%|####....| epoch 3/8 step 12/20 loss 0.1234 523 img/s 00:12<00:20"
 * (whole-run percentage, elapsed<ETA), at most width - 1 characters: without the bar when
 * it leaves less than 8 columns for it, then " 3/8 loss 0.123 00:12<00:20" after the
 * percentage, then cut. Returns its length. */
size_t dc_cli_progress_format(char *buf, size_t cap, int width, const dc_train_progress *tp,
                              double loss, double elapsed_s);

#endif
