package dev.kiln.transport;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Locale;
import java.util.Optional;

/**
 * Linux futexes on shared memory: a thread sleeps until another thread, possibly in another
 * process that maps the same file, changes a 32-bit word and wakes it. Calls libc's
 * {@code syscall(SYS_futex, ...)} through a downcall with the shared (not the
 * {@code _PRIVATE}) operations, so the kernel keys waiters by the mapped file page, not by the
 * process's address space.
 *
 * <p>Available on Linux x86_64 only; elsewhere, or when the downcall cannot be linked,
 * {@link #isAvailable()} is false and callers poll instead. Linking is a restricted operation:
 * Kiln JVMs run with {@code --enable-native-access=ALL-UNNAMED}. The word must be a 4-byte
 * aligned int in a {@code MAP_SHARED} mapping (a {@code FileChannel} mapped read-write) for
 * waking across processes; any native memory works within one process.
 *
 * <p>Thread-safe: any thread may call any method. Each thread keeps a small native scratch
 * area (a {@code timespec} and the captured {@code errno}), so waiting allocates nothing after
 * a thread's first wait.
 */
public final class Futex {

    private static final long SYS_FUTEX = 202;
    private static final int FUTEX_WAIT = 0;
    private static final int FUTEX_WAKE = 1;
    private static final int EAGAIN = 11;
    private static final int EINTR = 4;
    private static final int ETIMEDOUT = 110;
    private static final long NANOS_PER_SECOND = 1_000_000_000L;

    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final long ERRNO_OFFSET = CAPTURE.byteOffset(MemoryLayout.PathElement.groupElement("errno"));
    /** struct timespec { time_t tv_sec; long tv_nsec; } on LP64. */
    private static final long TIMESPEC_BYTES = 16;
    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(() -> {
        Arena arena = Arena.ofAuto();
        return new Scratch(arena.allocate(TIMESPEC_BYTES, 8), arena.allocate(CAPTURE));
    });

    /** {@code long syscall(long number, int *uaddr, int op, int val, struct timespec *timeout)}, or null. */
    private static final MethodHandle SYSCALL = link();

    private Futex() {
    }

    /** @return whether futex calls work here; if false, {@link #await} and {@link #wake} must not be called */
    public static boolean isAvailable() {
        return SYSCALL != null;
    }

    /**
     * Sleeps while {@code word} holds {@code expected}, until {@link #wake} on the same word,
     * a spurious wake-up, or the timeout. Callers re-check their condition after every return.
     * Not interruptible by {@link Thread#interrupt()}: keep timeouts short enough to notice
     * interrupts between calls.
     *
     * @param word         a 4-byte aligned int in shared native memory
     * @param expected     the value seen before deciding to sleep; if the word differs, returns at once
     * @param timeoutNanos longest sleep in nanoseconds; 0 or less returns false at once
     * @return false if the timeout expired, true otherwise (woken, word changed, or interrupted by a signal)
     * @throws IllegalStateException if futexes are unavailable or the call fails for another reason
     */
    public static boolean await(MemorySegment word, int expected, long timeoutNanos) {
        if (timeoutNanos <= 0) {
            return false;
        }
        Scratch scratch = SCRATCH.get();
        scratch.timespec.set(ValueLayout.JAVA_LONG, 0, timeoutNanos / NANOS_PER_SECOND);
        scratch.timespec.set(ValueLayout.JAVA_LONG, 8, timeoutNanos % NANOS_PER_SECOND);
        long result = call(scratch.capture, word, FUTEX_WAIT, expected, scratch.timespec);
        if (result == 0) {
            return true;
        }
        int errno = scratch.capture.get(ValueLayout.JAVA_INT, ERRNO_OFFSET);
        return switch (errno) {
            case ETIMEDOUT -> false;
            case EAGAIN, EINTR -> true;
            default -> throw new IllegalStateException("futex wait failed with errno " + errno);
        };
    }

    /**
     * Wakes up to {@code count} threads sleeping in {@link #await} on {@code word}, in any process.
     *
     * @param word  the word the waiters sleep on
     * @param count most threads to wake, at least 1
     * @return the number of threads woken
     * @throws IllegalStateException if futexes are unavailable or the call fails
     */
    public static int wake(MemorySegment word, int count) {
        MemorySegment capture = SCRATCH.get().capture;
        long result = call(capture, word, FUTEX_WAKE, count, MemorySegment.NULL);
        if (result < 0) {
            throw new IllegalStateException("futex wake failed with errno " + capture.get(ValueLayout.JAVA_INT, ERRNO_OFFSET));
        }
        return (int) result;
    }

    private static long call(MemorySegment capture, MemorySegment word, int op, int value, MemorySegment timeout) {
        if (SYSCALL == null) {
            throw new IllegalStateException("futex is unavailable on " + System.getProperty("os.name") + " "
                    + System.getProperty("os.arch") + "; check Futex.isAvailable() first");
        }
        try {
            return (long) SYSCALL.invokeExact(capture, SYS_FUTEX, word, op, value, timeout);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("futex call failed", t);
        }
    }

    /** A thread's native memory for the timeout argument and the errno the downcall captures. */
    private record Scratch(MemorySegment timespec, MemorySegment capture) {
    }

    @SuppressWarnings("restricted") // allowed by --enable-native-access; see the class comment
    private static MethodHandle link() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "");
        if (!os.startsWith("linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) {
            return null;
        }
        try {
            Linker linker = Linker.nativeLinker();
            SymbolLookup libc = linker.defaultLookup();
            Optional<MemorySegment> syscall = libc.find("syscall");
            if (syscall.isEmpty()) {
                return null;
            }
            // syscall(2) is variadic after the number; int arguments need no promotion.
            FunctionDescriptor descriptor = FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG,
                    ValueLayout.ADDRESS, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS);
            return linker.downcallHandle(syscall.get(), descriptor, Linker.Option.firstVariadicArg(1),
                    Linker.Option.captureCallState("errno"));
        } catch (RuntimeException | LinkageError e) {
            return null;
        }
    }
}
