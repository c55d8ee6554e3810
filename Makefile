# SPDX-License-Identifier: MIT
#
# weft's build.  Plain GNU make, liburing style:
#   make            library, weft.pc and programs into build/
#   make test       build and run every unit test (each also as <name>.run)
#   make asan       the whole suite under AddressSanitizer+UBSan (build/asan)
#   make tsan       the whole suite under ThreadSanitizer (build/tsan)
#   make faults     the fault-injection suite (tests/faults/run.sh)
#   make bench      weft-bench --quick
#   make fuzz       libFuzzer targets in tests/fuzz/ (clang), FUZZ_SECONDS
#                   (300) each; not part of `make test`
#   make install / uninstall / clean
#                   prefix= (/usr/local), libdir= (multiarch: e.g.
#                   libdir=/usr/lib/x86_64-linux-gnu), DESTDIR= (staging)
# V=1 prints full commands.  Missing Debian packages are installed by the
# `deps` step (apt-get as root; otherwise it prints the command to run).

NAME		:= weft
VERSION_MAJOR	:= 0
VERSION		:= 0.1.0

prefix		?= /usr/local
exec_prefix	?= $(prefix)
libdir		?= $(exec_prefix)/lib
includedir	?= $(prefix)/include
bindir		?= $(exec_prefix)/bin
datadir		?= $(prefix)/share
pkgconfigdir	?= $(libdir)/pkgconfig

# SAN is empty, "address" or "thread"; each gets its own object folder.
SAN		?=
ifeq ($(SAN),)
BUILD		?= build
SANFLAGS	:=
else ifeq ($(SAN),address)
BUILD		?= build/asan
SANFLAGS	:= -fsanitize=address,undefined -fno-omit-frame-pointer \
		   -fno-sanitize-recover=undefined -DWEFT_ASAN=1 -DWEFT_LOCKRANK=1
else ifeq ($(SAN),thread)
BUILD		?= build/tsan
# ck_pr's inline assembly is invisible to TSan: make ck use __atomic builtins.
SANFLAGS	:= -fsanitize=thread -fno-omit-frame-pointer \
		   -DCK_USE_CC_BUILTINS=1 -DWEFT_TSAN=1
# ...and ck's builtin port still uses volatile loads and stores, which TSan
# does not see either: tests/tsan/ck_pr.h supplies __atomic ones.
CPPFLAGS	+= -Itests/tsan
else
$(error SAN must be empty, address or thread)
endif

CC		?= gcc
OPT		?= -O2 -g
# Link-time optimisation in the plain build: the hot paths cross files
# (a channel hand-off runs through chan.c, park.c and worker.c), and LTO
# inlines them: about 20% off a channel round trip (BENCHMARKS.md).  Fat
# objects keep libweft.a usable by programs linked without -flto.  The
# sanitizer builds go without it.  LTO= turns it off.
ifeq ($(SAN),)
LTO		?= -flto=auto -ffat-lto-objects
endif
WARN		:= -Wall -Wextra -Wshadow -Wstrict-prototypes \
		   -Wmissing-prototypes -Wno-unused-parameter -Werror=implicit
CPPFLAGS	+= -D_GNU_SOURCE -Iinclude -I.
# Stack clash protection: a frame larger than a page touches each page in
# turn, so it meets the guard below a task's stack instead of jumping it
# (README, "Stack overflow").  weft.pc hands the same flag to programs.
HARDEN		:= -fstack-clash-protection
# Frame pointers: weft_dump() and the deadlock report walk a parked task's
# stack by them (runtime/diag.c), from the context its switch saved.  No
# measurable cost on spawn, yield, channel or mutex (BENCHMARKS.md).
FRAMEPTR	:= -fno-omit-frame-pointer
CFLAGS		+= -std=gnu11 $(OPT) $(LTO) $(WARN) -fPIC -fvisibility=hidden \
		   -pthread $(HARDEN) $(FRAMEPTR) $(SANFLAGS)
ASFLAGS		+= $(SANFLAGS)
LDFLAGS		+= -pthread $(SANFLAGS) $(LTO) $(OPT) $(FRAMEPTR)
DEP_LIBS	:= -luring -lck -lpthread
CHECK_LIBS	:= $(shell pkg-config --libs check 2>/dev/null || echo -lcheck)

ifeq ($(V),1)
Q		:=
msg		= @true
else
Q		:= @
msg		= @printf '  %-6s %s\n' "$(1)" "$(2)"
endif

# Please keep these lists sorted alphabetically.
LIB_SRCS	:= \
	io/base.c \
	io/epoll.c \
	io/io.c \
	io/lockrank.c \
	io/uring.c \
	runtime/bufio.c \
	runtime/chan.c \
	runtime/config.c \
	runtime/diag.c \
	runtime/future.c \
	runtime/gen.c \
	runtime/group.c \
	runtime/iocall.c \
	runtime/net.c \
	runtime/pool.c \
	runtime/prefork.c \
	runtime/run.c \
	runtime/scope.c \
	runtime/signal.c \
	runtime/symbol.c \
	runtime/sync.c \
	runtime/util.c \
	sched/ctx_aarch64.S \
	sched/ctx_x86_64.S \
	sched/monitor.c \
	sched/park.c \
	sched/runq.c \
	sched/stack.c \
	sched/task.c \
	sched/timer.c \
	sched/worker.c

BENCH_SRCS	:= $(sort $(wildcard cmd/weft-bench/*.c))
ECHO_SRCS	:= $(sort $(wildcard cmd/weft-echo/*.c))
E2E_SRCS	:= $(sort $(wildcard tests/e2e/*.c))
FAULT_SRCS	:= $(sort $(wildcard tests/faults/*.c))
HTTPD_SRCS	:= $(sort $(wildcard cmd/weft-httpd/*.c))
PROXY_SRCS	:= $(sort $(wildcard cmd/weft-proxy/*.c))
# weft-proxy's modules without its main(): unit tests named proxy_* and the
# fuzz targets link them.
PROXY_MODS	:= $(filter-out cmd/weft-proxy/main.c,$(PROXY_SRCS))
TEST_SRCS	:= $(sort $(wildcard tests/unit/*.c))
STRESS_SRCS	:= $(sort $(wildcard tests/stress/*.c))

LIB_OBJS	:= $(patsubst %,$(BUILD)/obj/%.o,$(LIB_SRCS))
BENCH_OBJS	:= $(patsubst %,$(BUILD)/obj/%.o,$(BENCH_SRCS))
ECHO_OBJS	:= $(patsubst %,$(BUILD)/obj/%.o,$(ECHO_SRCS))
FAULTS		:= $(patsubst tests/faults/%.c,$(BUILD)/tests/faults/%,$(FAULT_SRCS))
E2E_PROGS	:= $(patsubst tests/e2e/%.c,$(BUILD)/tests/e2e/%,$(E2E_SRCS))
HTTPD_OBJS	:= $(patsubst %,$(BUILD)/obj/%.o,$(HTTPD_SRCS))
PROXY_OBJS	:= $(patsubst %,$(BUILD)/obj/%.o,$(PROXY_SRCS))
PROXY_MOD_OBJS	:= $(patsubst %,$(BUILD)/obj/%.o,$(PROXY_MODS))
TESTS		:= $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRCS))
STRESS		:= $(patsubst tests/stress/%.c,$(BUILD)/tests/stress_%,$(STRESS_SRCS))

STATIC_LIB	:= $(BUILD)/lib$(NAME).a
SHARED_LIB	:= $(BUILD)/lib$(NAME).so.$(VERSION_MAJOR)
PROGRAMS	:= $(BUILD)/weft-bench $(BUILD)/weft-echo $(BUILD)/weft-httpd \
		   $(BUILD)/weft-proxy

.PHONY: all deps test all-tests asan tsan faults bench fuzz install \
	uninstall clean check-aarch64
# Test objects are not intermediates: keep them between runs.
.SECONDARY:
.DEFAULT_GOAL	:= all

all: $(STATIC_LIB) $(SHARED_LIB) $(BUILD)/$(NAME).pc \
	$(BUILD)/$(NAME)-static.pc $(PROGRAMS)

# Installs what a fresh Debian 12 machine lacks (see README).
deps:
	$(Q)sh .ci/deps.sh

$(BUILD)/obj/%.c.o: %.c
	$(call msg,CC,$<)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/obj/%.S.o: %.S
	$(call msg,AS,$<)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(ASFLAGS) -MMD -MP -c -o $@ $<

$(STATIC_LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^

$(SHARED_LIB): $(LIB_OBJS) weft.map
	$(call msg,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname=lib$(NAME).so.$(VERSION_MAJOR) \
		-Wl,--version-script=weft.map $(LDFLAGS) -o $@ $(LIB_OBJS) \
		$(DEP_LIBS)
	$(Q)ln -sf lib$(NAME).so.$(VERSION_MAJOR) $(BUILD)/lib$(NAME).so

# libdir and includedir are written relative to ${prefix} when they lie
# under it, so `pkg-config --define-variable=prefix=DIR` relocates a staged
# install (tests/e2e/install.sh does).
pc_rel		= $(patsubst $(prefix)/%,$${prefix}/%,$(1))
PC_SED		= sed -e 's|@prefix@|$(prefix)|' \
		  -e 's|@libdir@|$(call pc_rel,$(libdir))|' \
		  -e 's|@includedir@|$(call pc_rel,$(includedir))|' \
		  -e 's|@VERSION@|$(VERSION)|'

$(BUILD)/%.pc: %.pc.in Makefile
	$(call msg,GEN,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(PC_SED) $< > $@

$(BUILD)/weft-bench: $(BENCH_OBJS) $(STATIC_LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(BENCH_OBJS) $(STATIC_LIB) $(DEP_LIBS) -lm

$(BUILD)/weft-echo: $(ECHO_OBJS) $(STATIC_LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(ECHO_OBJS) $(STATIC_LIB) $(DEP_LIBS)

$(BUILD)/weft-httpd: $(HTTPD_OBJS) $(STATIC_LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(HTTPD_OBJS) $(STATIC_LIB) $(DEP_LIBS)

$(BUILD)/weft-proxy: $(PROXY_OBJS) $(STATIC_LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(PROXY_OBJS) $(STATIC_LIB) $(DEP_LIBS) -lm

$(BUILD)/tests/proxy_%: $(BUILD)/obj/tests/unit/proxy_%.c.o $(PROXY_MOD_OBJS) \
		$(STATIC_LIB)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(PROXY_MOD_OBJS) $(STATIC_LIB) \
		$(DEP_LIBS) $(CHECK_LIBS) -lm

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.c.o $(STATIC_LIB)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(STATIC_LIB) $(DEP_LIBS) $(CHECK_LIBS)

$(BUILD)/tests/stress_%: $(BUILD)/obj/tests/stress/%.c.o $(STATIC_LIB)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(STATIC_LIB) $(DEP_LIBS)

$(BUILD)/tests/e2e/%: $(BUILD)/obj/tests/e2e/%.c.o $(STATIC_LIB)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(STATIC_LIB) $(DEP_LIBS)

$(BUILD)/tests/faults/%: $(BUILD)/obj/tests/faults/%.c.o $(STATIC_LIB)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(STATIC_LIB) $(DEP_LIBS)

# `make test` runs every unit test binary and the e2e scripts, then prints
# one "N passed, N failed" line; `make NAME.run` runs one test.
test: deps
	$(Q)$(MAKE) --no-print-directory all-tests
	$(Q)BUILD=$(BUILD) SAN=$(SAN) sh tests/run.sh $(TESTS)

all-tests: all $(TESTS) $(STRESS) $(FAULTS) $(E2E_PROGS)

%.run: all-tests
	$(Q)BUILD=$(BUILD) SAN=$(SAN) WEFT_E2E=0 sh tests/run.sh $(BUILD)/tests/$*

# The servers and the churn program under resource limits, io_uring
# blocked and injected allocation failures; one "N passed, N failed" line.
faults: deps
	$(Q)$(MAKE) --no-print-directory all $(FAULTS)
	$(Q)BUILD=$(BUILD) SAN=$(SAN) sh tests/faults/run.sh

asan:
	$(Q)$(MAKE) --no-print-directory SAN=address test

tsan:
	$(Q)$(MAKE) --no-print-directory SAN=thread test

# The http scenario drives the servers with wrk (Debian package wrk).
bench: export WEFT_DEPS_EXTRA += wrk
bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(BUILD)/weft-bench --quick --json $(BUILD)/bench.json \
		--csv $(BUILD)/bench.csv --svg $(BUILD)/bench.svg

# libFuzzer targets (tests/fuzz/fuzz_NAME.c), built with clang into
# build/fuzz/ and run for FUZZ_SECONDS each, one after the other.  Seeds
# come from tests/fuzz/corpus/NAME/ (read only), tokens from
# tests/fuzz/NAME.dict if present; what the fuzzer finds goes to
# build/fuzz/corpus-NAME/, crash inputs to build/fuzz/.  Any crash,
# sanitizer report or failed check stops the target with an error.  The
# config target is built once both it and cmd/weft-proxy/config.c exist.
FUZZ_CC		?= clang
FUZZ_SECONDS	?= 300
FUZZ_MAX_LEN	?= 4096
FUZZ_DIR	:= build/fuzz
FUZZ_CFLAGS	:= -g -O1 -fsanitize=fuzzer,address,undefined \
		   -fno-sanitize-recover=undefined -D_GNU_SOURCE -Iinclude -I. \
		   -std=gnu11 $(WARN)
FUZZ_NAMES	:= pp
ifneq ($(wildcard tests/fuzz/fuzz_config.c),)
ifneq ($(wildcard cmd/weft-proxy/config.c),)
FUZZ_NAMES	+= config
endif
endif

$(FUZZ_DIR)/fuzz_pp: tests/fuzz/fuzz_pp.c cmd/weft-proxy/pp.c \
		cmd/weft-proxy/pp.h
	$(call msg,FUZZCC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_pp.c \
		cmd/weft-proxy/pp.c

$(FUZZ_DIR)/fuzz_config: tests/fuzz/fuzz_config.c cmd/weft-proxy/config.c \
		cmd/weft-proxy/config.h
	$(call msg,FUZZCC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_config.c \
		cmd/weft-proxy/config.c

fuzz:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { \
		echo "make fuzz needs clang with libFuzzer:" \
		     "apt-get install clang libclang-rt-14-dev" >&2; exit 1; }
	$(Q)$(MAKE) --no-print-directory \
		$(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_NAMES))
	$(Q)for n in $(FUZZ_NAMES); do \
		mkdir -p $(FUZZ_DIR)/corpus-$$n || exit 1; \
		seeds=; [ -d tests/fuzz/corpus/$$n ] && \
			seeds=tests/fuzz/corpus/$$n; \
		dict=; [ -f tests/fuzz/$$n.dict ] && \
			dict=-dict=tests/fuzz/$$n.dict; \
		printf '  %-6s %s (%s s)\n' FUZZ $$n $(FUZZ_SECONDS); \
		$(FUZZ_DIR)/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) \
			-max_len=$(FUZZ_MAX_LEN) -print_final_stats=1 $$dict \
			-artifact_prefix=$(FUZZ_DIR)/crash-$$n- \
			$(FUZZ_DIR)/corpus-$$n $$seeds || exit 1; \
	done

install: all
	install -D -m 644 include/weft.h $(DESTDIR)$(includedir)/weft.h
	install -D -m 644 $(STATIC_LIB) $(DESTDIR)$(libdir)/lib$(NAME).a
	install -D -m 755 $(SHARED_LIB) \
		$(DESTDIR)$(libdir)/lib$(NAME).so.$(VERSION_MAJOR)
	ln -sf lib$(NAME).so.$(VERSION_MAJOR) $(DESTDIR)$(libdir)/lib$(NAME).so
	# Generated for the prefix being installed to, not the one built with.
	mkdir -p $(DESTDIR)$(pkgconfigdir)
	for pc in $(NAME) $(NAME)-static; do \
		$(PC_SED) $$pc.pc.in > $(DESTDIR)$(pkgconfigdir)/$$pc.pc && \
		chmod 644 $(DESTDIR)$(pkgconfigdir)/$$pc.pc || exit 1; done
	for p in weft-bench weft-echo weft-httpd weft-proxy; do \
		install -D -m 755 $(BUILD)/$$p $(DESTDIR)$(bindir)/$$p; done
	# The loader's cache, for a real install by root (not a staged one);
	# a libdir outside the loader's paths still needs an rpath (README).
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
		echo ldconfig; PATH="$$PATH:/sbin:/usr/sbin" ldconfig || :; \
	elif [ -z "$(DESTDIR)" ]; then \
		echo "note: run ldconfig as root so the loader finds" \
		     "$(libdir)/lib$(NAME).so.$(VERSION_MAJOR)"; fi
	# The gdb helper: (gdb) source $(datadir)/weft/gdb/weft.py
	install -D -m 644 gdb/weft.py $(DESTDIR)$(datadir)/weft/gdb/weft.py

uninstall:
	rm -f $(DESTDIR)$(includedir)/weft.h \
	      $(DESTDIR)$(libdir)/lib$(NAME).a \
	      $(DESTDIR)$(libdir)/lib$(NAME).so.$(VERSION_MAJOR) \
	      $(DESTDIR)$(libdir)/lib$(NAME).so \
	      $(DESTDIR)$(pkgconfigdir)/$(NAME).pc \
	      $(DESTDIR)$(pkgconfigdir)/$(NAME)-static.pc \
	      $(DESTDIR)$(bindir)/weft-bench $(DESTDIR)$(bindir)/weft-echo \
	      $(DESTDIR)$(bindir)/weft-httpd $(DESTDIR)$(bindir)/weft-proxy \
	      $(DESTDIR)$(datadir)/weft/gdb/weft.py
	-rmdir $(DESTDIR)$(datadir)/weft/gdb $(DESTDIR)$(datadir)/weft

clean:
	rm -rf build

# Keeps the aarch64 code paths compilable from an x86-64 machine (needs
# Debian's gcc-aarch64-linux-gnu; ck and liburing headers come from the host).
AARCH64_CC	?= aarch64-linux-gnu-gcc
check-aarch64:
	$(Q)mkdir -p build/aarch64
	$(Q)for f in $(LIB_SRCS); do \
		printf '  %-6s %s\n' A64 $$f; \
		$(AARCH64_CC) -std=gnu11 -O2 -D_GNU_SOURCE -Iinclude -I. \
			-idirafter /usr/include $(WARN) -Werror \
			-c $$f -o build/aarch64/$$(basename $$f).o || exit 1; \
	done

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
