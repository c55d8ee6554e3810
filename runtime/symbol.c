/* SPDX-License-Identifier: MIT */
/*
 * Symbol names for the diagnostics' backtraces (runtime/diag.c): the
 * function that contains a code address, read from the ELF symbol table of
 * the object it lies in.
 *
 * dladdr() alone names only exported dynamic symbols, so a static function,
 * or any function of an executable not linked with -rdynamic, would show
 * as the nearest export before it (or nothing).  Here each loaded object
 * (dl_iterate_phdr) is opened as a file when an address first falls in it,
 * and its .symtab (else .dynsym) searched.  No DWARF: frames are printed as
 * "function+0xoff (object+0xoff)", and the object offset gives file and
 * line with `addr2line -f -e OBJECT OFFSET`.
 *
 * Costs: one mmap of each object that appears in a backtrace, and a
 * linear scan of its symbols per distinct address.  Made and dropped per
 * dump, so nothing stays mapped between dumps.  Any thread; the caller owns
 * its struct weft__syms.
 */
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/runtime.h"

#define SYM_OBJS_MAX 256
/* Both supported machines are 64-bit (sched/ctx.h). */
#define ELFCLASSW ELFCLASS64

struct symobj {
	uintptr_t base;		/* load bias (dlpi_addr) */
	uintptr_t lo, hi;	/* extent of its PT_LOAD segments */
	char path[256];
	bool tried;		/* opened (or failed to) already */
	void *map;
	size_t maplen;
	const ElfW(Sym) *syms;
	size_t nsyms;
	const char *strs;
	size_t strsz;
};

struct weft__syms {
	struct symobj obj[SYM_OBJS_MAX];
	int n;
};

static int
add_obj(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct weft__syms *s = arg;
	struct symobj *o;
	uintptr_t lo = UINTPTR_MAX, hi = 0;

	(void)size;
	if (s->n == SYM_OBJS_MAX)
		return 1;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type != PT_LOAD)
			continue;
		if (info->dlpi_addr + ph->p_vaddr < lo)
			lo = info->dlpi_addr + ph->p_vaddr;
		if (info->dlpi_addr + ph->p_vaddr + ph->p_memsz > hi)
			hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
	}
	if (lo >= hi)
		return 0;
	o = &s->obj[s->n++];
	memset(o, 0, sizeof(*o));
	o->base = info->dlpi_addr;
	o->lo = lo;
	o->hi = hi;
	/* The executable comes first, with an empty name. */
	if (info->dlpi_name && info->dlpi_name[0]) {
		snprintf(o->path, sizeof(o->path), "%s", info->dlpi_name);
	} else {
		ssize_t n = readlink("/proc/self/exe", o->path,
				     sizeof(o->path) - 1);

		o->path[n > 0 ? n : 0] = '\0';
		if (n <= 0)
			snprintf(o->path, sizeof(o->path), "/proc/self/exe");
	}
	return 0;
}

struct weft__syms *
weft__syms_open(void)
{
	struct weft__syms *s = calloc(1, sizeof(*s));

	if (s)
		dl_iterate_phdr(add_obj, s);
	return s;
}

void
weft__syms_close(struct weft__syms *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n; i++)
		if (s->obj[i].map)
			munmap(s->obj[i].map, s->obj[i].maplen);
	free(s);
}

/* Map o's file and find its symbol table; on failure o has none. */
static void
load_obj(struct symobj *o)
{
	const ElfW(Ehdr) *eh;
	const ElfW(Shdr) *sh;
	const ElfW(Shdr) *best = NULL;
	struct stat st;
	int fd;

	o->tried = true;
	fd = open(o->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(*eh)) {
		close(fd);
		return;
	}
	o->maplen = (size_t)st.st_size;
	o->map = mmap(NULL, o->maplen, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (o->map == MAP_FAILED) {
		o->map = NULL;
		return;
	}
	eh = o->map;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != ELFCLASSW ||
	    eh->e_shentsize != sizeof(ElfW(Shdr)) ||
	    eh->e_shoff + (size_t)eh->e_shnum * sizeof(ElfW(Shdr)) >
	    o->maplen)
		return;
	sh = (const ElfW(Shdr) *)((const char *)o->map + eh->e_shoff);
	for (int i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type == SHT_SYMTAB)
			best = &sh[i];
		else if (sh[i].sh_type == SHT_DYNSYM && !best)
			best = &sh[i];
	}
	if (!best || best->sh_link >= eh->e_shnum ||
	    best->sh_offset + best->sh_size > o->maplen ||
	    sh[best->sh_link].sh_offset + sh[best->sh_link].sh_size >
	    o->maplen)
		return;
	o->syms = (const ElfW(Sym) *)((const char *)o->map + best->sh_offset);
	o->nsyms = best->sh_size / sizeof(ElfW(Sym));
	o->strs = (const char *)o->map + sh[best->sh_link].sh_offset;
	o->strsz = sh[best->sh_link].sh_size;
}

static const char *
basename_of(const char *path)
{
	const char *b = strrchr(path, '/');

	return b ? b + 1 : path;
}

/*
 * Write "function+0xoff (object+0xoff)" for code address `pc` into buf
 * (always NUL-terminated), or "0x... (object+0xoff)" without a symbol, or
 * "0x..." outside every object.
 */
void
weft__syms_name(struct weft__syms *s, uintptr_t pc, char *buf, size_t len)
{
	struct symobj *o = NULL;
	const ElfW(Sym) *hit = NULL;
	uintptr_t off;

	for (int i = 0; s && i < s->n; i++)
		if (pc >= s->obj[i].lo && pc < s->obj[i].hi) {
			o = &s->obj[i];
			break;
		}
	if (!o) {
		snprintf(buf, len, "%#lx", (unsigned long)pc);
		return;
	}
	if (!o->tried)
		load_obj(o);
	off = pc - o->base;
	for (size_t i = 0; i < o->nsyms; i++) {
		const ElfW(Sym) *y = &o->syms[i];
		int type = ELF64_ST_TYPE(y->st_info);

		if ((type != STT_FUNC && type != STT_GNU_IFUNC) ||
		    y->st_shndx == SHN_UNDEF || y->st_name >= o->strsz ||
		    y->st_value > off)
			continue;
		if (y->st_size && off >= y->st_value + y->st_size)
			continue;
		/* Sized and containing beats a nearer unsized one. */
		if (!hit || (y->st_size && !hit->st_size) ||
		    ((!y->st_size) == (!hit->st_size) &&
		     y->st_value > hit->st_value))
			hit = y;
	}
	if (hit)
		snprintf(buf, len, "%s+%#lx (%s+%#lx)", o->strs + hit->st_name,
			 (unsigned long)(off - hit->st_value),
			 basename_of(o->path), (unsigned long)off);
	else
		snprintf(buf, len, "%#lx (%s+%#lx)", (unsigned long)pc,
			 basename_of(o->path), (unsigned long)off);
}
