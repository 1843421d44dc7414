/* render.c - result tables (ctlcmd.h format) as aligned text or JSON.
 *
 * Text: a table with a header row, numbers right-aligned, times as ISO 8601
 * local time with offset, sizes (":b") as "1.5 KiB" (exact below 1024),
 * durations (":d", nanoseconds) as "850 ns", "1.2 ms"..., lists joined by
 * ", "; a record (status, stats, checkpoint...) as "key  value" lines.
 * JSON: one document: an array of objects (tables) or one object (records);
 * ":u", ":b" and ":d" fields are exact numbers (empty: null), ":t" ISO 8601
 * strings (0: null), ":l" arrays of strings.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mmsbctl.h"

#define RENDER_COLS_MAX 128u /* fields per record */

/* One column of the header. */
struct render_col {
	char name[64]; /* display name (type suffix removed) */
	char type;     /* 's', 'u', 'b', 'd', 't' or 'l' */
};

/* Parse a header line into cols; returns the number of columns. */
static size_t render_header(const char *line, struct render_col *cols, size_t cap)
{
	char *copy = strdup(line), *f[RENDER_COLS_MAX], *colon;
	int n = copy ? ctl_split(copy, f, RENDER_COLS_MAX) : -ENOMEM, i;

	for (i = 0; i < n && (size_t)i < cap; i++) {
		colon = strrchr(f[i], ':');
		cols[i].type = colon && colon[1] && !colon[2] ? colon[1] : 's';
		if (colon && colon[1] && !colon[2])
			*colon = '\0';
		snprintf(cols[i].name, sizeof(cols[i].name), "%s", f[i]);
	}
	free(copy);
	return n < 0 ? 0 : (size_t)i;
}

/* ISO 8601 local time of ns since 1970 ("-" for 0). */
static void render_time(int64_t ns, char *buf, size_t cap)
{
	time_t t = (time_t)(ns / 1000000000);
	char zone[8];
	struct tm tm;
	size_t len;

	if (ns == 0 || localtime_r(&t, &tm) == NULL) {
		snprintf(buf, cap, "-");
		return;
	}
	len = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm); /* +hhmm -> +hh:mm */
	snprintf(buf + len, cap - len, "%.3s:%.2s", zone, zone + 3);
}

/* A byte count for people: exact below 1 KiB, else 3 significant digits
 * with a binary unit ("1.50 KiB", "16.0 MiB", "234 GiB"). */
void mctl_human_bytes(uint64_t v, char *buf, size_t cap)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double x = (double)v;
	size_t u = 0;

	if (v < 1024) {
		snprintf(buf, cap, "%" PRIu64, v);
		return;
	}
	x /= 1024;
	while (x >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		x /= 1024;
		u++;
	}
	snprintf(buf, cap, x < 10 ? "%.2f %s" : x < 100 ? "%.1f %s" : "%.0f %s", x, unit[u]);
}

/* A duration in nanoseconds for people: "850 ns", "12.5 us", "1.20 ms", "3.00 s". */
static void render_duration(uint64_t ns, char *buf, size_t cap)
{
	static const char *const unit[] = {"us", "ms", "s"};
	double x = (double)ns;
	size_t u = 0;

	if (ns < 1000) {
		snprintf(buf, cap, "%" PRIu64 " ns", ns);
		return;
	}
	x /= 1000;
	while (x >= 1000 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		x /= 1000;
		u++;
	}
	snprintf(buf, cap, x < 10 ? "%.2f %s" : x < 100 ? "%.1f %s" : "%.0f %s", x, unit[u]);
}

/* Right-aligned, exact in JSON. */
static bool render_numeric(char type)
{
	return type == 'u' || type == 'b' || type == 'd';
}

/* Text of one cell, malloc'd. */
static char *render_cell(const struct render_col *c, const char *v)
{
	char tbuf[48], *s, *p;

	if (c->type == 't') {
		render_time(strtoll(v, NULL, 10), tbuf, sizeof(tbuf));
		return strdup(tbuf);
	}
	if ((c->type == 'b' || c->type == 'd') && *v) {
		if (c->type == 'b')
			mctl_human_bytes(strtoull(v, NULL, 10), tbuf, sizeof(tbuf));
		else
			render_duration(strtoull(v, NULL, 10), tbuf, sizeof(tbuf));
		return strdup(tbuf);
	}
	if (c->type != 'l')
		return strdup(*v ? v : (render_numeric(c->type) ? "-" : ""));
	s = malloc(strlen(v) * 2 + 2); /* each '\n' becomes ", " */
	if (s == NULL)
		return NULL;
	for (p = s; *v; v++) {
		if (*v == '\n') {
			*p++ = ',';
			*p++ = ' ';
		} else {
			*p++ = *v;
		}
	}
	*p = '\0';
	return s;
}

static void render_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", f);
		else if (ch == '\t')
			fputs("\\t", f);
		else if (ch == '\r')
			fputs("\\r", f);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void render_json_value(FILE *f, const struct render_col *c, const char *v)
{
	char tbuf[48];
	const char *p;

	switch (c->type) {
	case 'u':
	case 'b':
	case 'd':
		if (*v)
			fputs(v, f);
		else
			fputs("null", f);
		return;
	case 't':
		if (strtoll(v, NULL, 10) == 0) {
			fputs("null", f);
			return;
		}
		render_time(strtoll(v, NULL, 10), tbuf, sizeof(tbuf));
		render_json_string(f, tbuf);
		return;
	case 'l':
		fputc('[', f);
		while (*v) {
			char *item;

			p = strchr(v, '\n');
			item = strndup(v, p ? (size_t)(p - v) : strlen(v));
			if (item != NULL)
				render_json_string(f, item);
			free(item);
			v = p ? p + 1 : v + strlen(v);
			if (p)
				fputs(", ", f);
		}
		fputc(']', f);
		return;
	default:
		render_json_string(f, v);
	}
}

/* One record as a JSON object. */
static void render_json_object(FILE *f, const struct render_col *cols, size_t nc, char **v, size_t nv)
{
	size_t i;

	fputc('{', f);
	for (i = 0; i < nc && i < nv; i++) {
		if (i)
			fputs(", ", f);
		render_json_string(f, cols[i].name);
		fputs(": ", f);
		render_json_value(f, &cols[i], v[i]);
	}
	fputc('}', f);
}

/* Split text into lines in place; returns the count (lines[] malloc'd). */
static size_t render_lines(char *text, char ***lines)
{
	size_t n = 0, cap = 0;
	char **l = NULL, **p, *nl;

	while (*text) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			p = realloc(l, cap * sizeof(*l));
			if (p == NULL)
				break;
			l = p;
		}
		l[n++] = text;
		nl = strchr(text, '\n');
		if (nl == NULL)
			break;
		*nl = '\0';
		text = nl + 1;
	}
	*lines = l;
	return n;
}

static void render_record_text(FILE *f, const struct render_col *cols, size_t nc, char **v, size_t nv)
{
	size_t i, w = 0;
	char *cell;

	for (i = 0; i < nc; i++)
		w = strlen(cols[i].name) > w ? strlen(cols[i].name) : w;
	for (i = 0; i < nc && i < nv; i++) {
		cell = render_cell(&cols[i], v[i]);
		fprintf(f, "%-*s  %s\n", (int)w, cols[i].name, cell ? cell : "?");
		free(cell);
	}
}

/* A table: cells rendered first, then widths, then printed. */
static int render_table_text(FILE *f, const struct render_col *cols, size_t nc, char **lines, size_t nl)
{
	char ***cells = calloc(nl ? nl : 1, sizeof(*cells)), *v[RENDER_COLS_MAX];
	size_t w[RENDER_COLS_MAX] = {0}, r, i;
	int n;

	if (cells == NULL)
		return -ENOMEM;
	for (i = 0; i < nc; i++)
		w[i] = strlen(cols[i].name);
	for (r = 0; r < nl; r++) {
		n = ctl_split(lines[r], v, RENDER_COLS_MAX);
		cells[r] = calloc(nc, sizeof(char *));
		for (i = 0; cells[r] && i < nc; i++) {
			cells[r][i] = render_cell(&cols[i], (int)i < n ? v[i] : "");
			if (cells[r][i] && strlen(cells[r][i]) > w[i])
				w[i] = strlen(cells[r][i]);
		}
	}
	for (i = 0; i < nc; i++)
		fprintf(f, "%-*s%s", i + 1 < nc || render_numeric(cols[i].type) ? (int)w[i] : 0, cols[i].name,
			i + 1 < nc ? "  " : "\n");
	for (r = 0; r < nl; r++) {
		for (i = 0; cells[r] && i < nc; i++) {
			const char *c = cells[r][i] ? cells[r][i] : "?";

			int width = render_numeric(cols[i].type) ? (int)w[i] : i + 1 == nc ? 0 : -(int)w[i];

			fprintf(f, "%*s%s", width, c, i + 1 == nc ? "\n" : "  ");
			free(cells[r][i]);
		}
		free(cells[r]);
	}
	free(cells);
	return 0;
}

int mctl_render(FILE *f, const char *text, bool json, bool record)
{
	struct render_col *cols = calloc(RENDER_COLS_MAX, sizeof(*cols));
	char *copy = strdup(text), **lines = NULL, *v[RENDER_COLS_MAX];
	size_t nl = copy ? render_lines(copy, &lines) : 0, nc = 0, r;
	int rc = copy && cols ? 0 : -ENOMEM, n;

	if (rc == 0 && nl > 0)
		nc = render_header(lines[0], cols, RENDER_COLS_MAX);
	if (rc == 0 && json) {
		if (!record)
			fputc('[', f);
		for (r = 1; r < nl; r++) {
			n = ctl_split(lines[r], v, RENDER_COLS_MAX);
			fputs(record ? "" : r > 1 ? ",\n " : "\n ", f);
			render_json_object(f, cols, nc, v, n < 0 ? 0 : (size_t)n);
			if (record)
				break;
		}
		fputs(record ? (nl > 1 ? "\n" : "{}\n") : (nl > 1 ? "\n]\n" : "]\n"), f);
	} else if (rc == 0 && record && nl > 1) {
		n = ctl_split(lines[1], v, RENDER_COLS_MAX);
		render_record_text(f, cols, nc, v, n < 0 ? 0 : (size_t)n);
	} else if (rc == 0 && !record && nl > 0) {
		rc = render_table_text(f, cols, nc, lines + 1, nl - 1);
	}
	free(lines);
	free(copy);
	free(cols);
	return rc;
}

int mctl_render_stream(FILE *f, const char *header, const char *line, bool json)
{
	struct render_col cols[16];
	size_t nc = render_header(header, cols, 16), i;
	char *copy = strdup(line), *v[16], *cell;
	int n = copy ? ctl_split(copy, v, 16) : -ENOMEM;

	if (n < 0) {
		free(copy);
		return n;
	}
	if (json) {
		render_json_object(f, cols, nc, v, (size_t)n);
		fputc('\n', f);
	} else {
		for (i = 0; i < nc && (int)i < n; i++) {
			cell = header == line ? strdup(cols[i].name) : render_cell(&cols[i], v[i]);
			if (render_numeric(cols[i].type))
				fprintf(f, "%10s  ", cell ? cell : "?");
			else if (i + 1 == nc)
				fprintf(f, "%s", cell ? cell : "?");
			else
				fprintf(f, "%-*s  ", cols[i].type == 't' ? 25 : 11, cell ? cell : "?");
			free(cell);
		}
		fputc('\n', f);
	}
	free(copy);
	fflush(f);
	return 0;
}

void mctl_render_diffstat(FILE *f, const char *text)
{
	uint64_t n_add = 0, n_rm = 0, n_mod = 0, n_attr = 0, bytes = 0;
	const char *p = strchr(text, '\n');
	char human[32];

	for (p = p ? p + 1 : ""; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
		const char *t1 = strchr(p, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;

		n_add += strncmp(p, "added\t", 6) == 0;
		n_rm += strncmp(p, "removed\t", 8) == 0;
		n_mod += strncmp(p, "modified\t", 9) == 0;
		n_attr += strncmp(p, "attrs\t", 6) == 0;
		if (t2)
			bytes += strtoull(t2 + 1, NULL, 10);
	}
	mctl_human_bytes(bytes, human, sizeof(human));
	fprintf(f, "%" PRIu64 " added, %" PRIu64 " removed, %" PRIu64 " modified, %" PRIu64
		   " with attribute changes; %" PRIu64 " bytes%s%s%s changed\n",
		n_add, n_rm, n_mod, n_attr, bytes, bytes >= 1024 ? " (" : "", bytes >= 1024 ? human : "",
		bytes >= 1024 ? ")" : "");
}
