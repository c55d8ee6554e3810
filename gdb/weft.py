# SPDX-License-Identifier: MIT
#
# gdb helper for programs that use weft: list the tasks (coroutines) of a
# stopped process and walk the stack of a parked one.
#
#   (gdb) source /usr/local/share/weft/gdb/weft.py   # or: make install's
#   (gdb) info weft-tasks            every live task: id, state, what it
#                                    waits on, where it stopped
#   (gdb) weft-bt ID                 the backtrace of parked task ID
#   (gdb) weft-bt all                ... of every parked task
#
# A parked task is not a thread, so gdb cannot see its stack by itself.
# Its context is on its own stack: weft__ctx_switch() (sched/ctx_*.S)
# pushed the callee-saved registers there and stored the stack pointer in
# the descriptor's `sp`.  weft-bt loads those registers into the selected
# thread for the time of one `backtrace` (gdb then unwinds with the
# program's DWARF call frame information, so frames without frame pointers
# and inlined calls show too) and puts the thread's own registers back.
# That needs a live process (attached, or stopped under gdb): a core file's
# registers cannot be changed.
#
# Descriptors are found through `weft__debug_info` (sched/task.c): the
# chunk list of the descriptor pool and the main task.  The library must
# have its debug information (weft is built with -g).

import gdb

STATES = {0: "pending", 1: "running", 2: "suspended", 3: "done",
          4: "cancelled"}
WAITS = ["nothing known", "sleep", "join", "future", "futures", "chan send",
         "chan recv", "select", "mutex", "rwlock", "cond", "waitgroup", "sem",
         "once", "group", "I/O", "pool job", "other"]
PARK_SAVED = 0x4
PARK_LOCKED = 0x20

# Saved frame, in 8-byte slots from the saved sp (sched/ctx.h).
FRAMES = {
    "x86-64": {"words": 8, "pc": 7,
               "regs": {"r15": 1, "r14": 2, "r13": 3, "r12": 4, "rbx": 5,
                        "rbp": 6},
               "sp": "rsp", "pcreg": "rip"},
    "aarch64": {"words": 20, "pc": 19,
                "regs": dict([("x%d" % (19 + i), 8 + i) for i in range(10)] +
                             [("x29", 18), ("x30", 19)]),
                "sp": "sp", "pcreg": "pc"},
}


def _arch():
    name = gdb.selected_frame().architecture().name()
    if "aarch64" in name:
        return FRAMES["aarch64"]
    return FRAMES["x86-64"]


def _info():
    sym = gdb.lookup_global_symbol("weft__debug_info") or \
        gdb.lookup_static_symbol("weft__debug_info")
    if sym is None:
        raise gdb.GdbError("weft: no weft__debug_info: is the program "
                           "linked with weft, with its debug information?")
    info = sym.value()
    if int(info["version"]) != 1:
        raise gdb.GdbError("weft: weft__debug_info version %d unknown"
                           % int(info["version"]))
    return info


def tasks():
    """Every live descriptor (refs != 0), the main task first."""
    info = _info()
    main = info["main_task"].dereference()
    if int(main) != 0 and int(main["refs"]) != 0:
        yield main.dereference()
    n = int(info["chunk_tasks"])
    c = info["chunks"].dereference()
    while int(c) != 0:
        arr = c["tasks"]
        for i in range(n):
            t = arr[i]
            if int(t["refs"]) != 0:
                yield t
        c = c["next"]


def _name(t):
    try:
        return t["name"].string()
    except gdb.error:
        return "?"


def _saved_words(t, words):
    sp = int(t["sp"])
    inf = gdb.selected_inferior()
    mem = inf.read_memory(sp, 8 * words)
    return sp, [int.from_bytes(bytes(mem[i * 8:(i + 1) * 8]), "little")
                for i in range(words)]


def _parked(t):
    """True if t's context is saved on its stack (not on a CPU)."""
    if int(t["state"]) != 2 or int(t["sp"]) == 0:
        return False
    park = int(t["park"])
    return bool(park & (PARK_SAVED | PARK_LOCKED))


def _where(pc):
    blk = gdb.block_for_pc(pc - 1)
    while blk is not None and blk.function is None:
        blk = blk.superblock
    if blk is not None:
        return "%s+%d" % (blk.function.print_name, pc - blk.function.value()
                          .address.cast(gdb.lookup_type("long")))
    return "0x%x" % pc


class InfoWeftTasks(gdb.Command):
    """List weft's live tasks: id, name, state, what a parked one waits
on, and the function it stopped in.  Usage: info weft-tasks"""

    def __init__(self):
        super().__init__("info weft-tasks", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        arch = _arch()
        count = 0
        for t in tasks():
            count += 1
            state = STATES.get(int(t["state"]), "?")
            line = "  task #%d \"%s\" %s" % (int(t["id"]), _name(t), state)
            if int(t["state"]) == 2:
                kind = int(t["wait_kind"])
                line += ": waiting on %s" % (WAITS[kind] if kind < len(WAITS)
                                             else "?")
                obj = int(t["wait_obj"])
                if obj:
                    line += " 0x%x" % obj
                if _parked(t):
                    try:
                        _, w = _saved_words(t, arch["words"])
                        line += " at %s" % _where(w[arch["pc"]])
                    except gdb.MemoryError:
                        pass
            gdb.write(line + "\n")
        gdb.write("%d tasks\n" % count)


class WeftBt(gdb.Command):
    """Backtrace of a parked weft task.  Usage: weft-bt ID | weft-bt all
Loads the task's saved registers into the selected thread for one
`backtrace`, then restores the thread's own."""

    def __init__(self):
        super().__init__("weft-bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        arg = arg.strip()
        if not arg:
            raise gdb.GdbError("usage: weft-bt ID | weft-bt all")
        want = None if arg == "all" else int(arg, 0)
        found = False
        for t in tasks():
            if want is not None and int(t["id"]) != want:
                continue
            found = True
            if not _parked(t):
                if want is not None:
                    raise gdb.GdbError("weft: task #%d is %s, not parked: "
                                       "its stack is a thread's (info "
                                       "threads)" % (want, STATES.get(
                                           int(t["state"]), "?")))
                continue
            gdb.write("task #%d \"%s\":\n" % (int(t["id"]), _name(t)))
            self._bt(t)
        if not found:
            raise gdb.GdbError("weft: no live task #%s" % arg)

    def _bt(self, t):
        arch = _arch()
        sp, w = _saved_words(t, arch["words"])
        gdb.execute("frame 0", to_string=True)
        regs = dict(arch["regs"])
        saved = {}
        names = list(regs) + [arch["sp"], arch["pcreg"]]
        for r in names:
            saved[r] = int(gdb.parse_and_eval("$" + r).cast(
                gdb.lookup_type("unsigned long")))
        try:
            for r, slot in regs.items():
                gdb.execute("set $%s = %d" % (r, w[slot]), to_string=True)
            gdb.execute("set $%s = %d" % (arch["pcreg"], w[arch["pc"]]),
                        to_string=True)
            gdb.execute("set $%s = %d" % (arch["sp"], sp + 8 * arch["words"]),
                        to_string=True)
            gdb.write(gdb.execute("backtrace", to_string=True))
        finally:
            for r in names:
                gdb.execute("set $%s = %d" % (r, saved[r]), to_string=True)
            gdb.execute("frame 0", to_string=True)


InfoWeftTasks()
WeftBt()
