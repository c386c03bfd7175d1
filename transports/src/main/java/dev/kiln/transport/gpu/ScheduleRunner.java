package dev.kiln.transport.gpu;

import dev.kiln.compiler.ExecutionPlan.CommGroup;
import dev.kiln.compiler.ExecutionPlan.CommOp;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Runs the NCCL part of a plan ({@link NcclSchedule}) on {@link CpuCommunicator}s, one thread per
 * rank, with host buffers, so the communication order the compiler produced runs for real in CI:
 * each rank issues its groups in order for every execution (a group of several operations between
 * {@code groupStart} and {@code groupEnd}), a writer sends the value of channel c for execution n as
 * {@code bytes} bytes of a pattern that depends on (c, n, offset), and a receiver checks every byte
 * it received. A wrong order deadlocks and ends in the communicator's timeout.
 *
 * <p>Only the communication runs: no actor code, no other channel.
 */
public final class ScheduleRunner {

    private ScheduleRunner() {
    }

    /**
     * Runs every rank of {@code schedule} on its own thread until each has done {@code executions}
     * executions, and checks every byte received.
     *
     * @param schedule   the per-rank groups, e.g. {@code plan.nccl()}
     * @param executions executions to run, >= 1
     * @param bytes      bytes each transfer carries, >= 1
     * @param timeout    how long a rank may wait for a peer before the run fails
     * @return the number of transfers received and checked
     * @throws IllegalStateException naming the first rank that failed and why: wrong bytes, a size mismatch, or a
     *                               wait past the timeout (a deadlock)
     */
    public static long run(NcclSchedule schedule, int executions, long bytes, Duration timeout) {
        if (executions < 1 || bytes < 1) {
            throw new IllegalArgumentException("executions and bytes must be >= 1, got " + executions + " and " + bytes);
        }
        if (schedule.size() == 0) {
            return 0;
        }
        List<CpuCommunicator> ranks = CpuCommunicator.create(schedule.size(), timeout);
        long[] received = new long[schedule.size()];
        Throwable[] failures = new Throwable[schedule.size()];
        List<Thread> threads = new ArrayList<>();
        for (int r = 0; r < schedule.size(); r++) {
            int rank = r;
            threads.add(Thread.ofPlatform().name("kiln-rank-" + r).start(() -> {
                try (CpuCommunicator comm = ranks.get(rank)) {
                    received[rank] = runRank(schedule.groups().get(rank), comm, executions, bytes);
                } catch (Throwable t) {
                    failures[rank] = t;
                    ranks.get(rank).abort();
                }
            }));
        }
        boolean interrupted = false;
        for (Thread t : threads) {
            while (true) {
                try {
                    t.join();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        int failed = -1;
        for (int r = 0; r < failures.length; r++) {
            if (failures[r] != null && (failed < 0 || (isAbortEcho(failures[failed]) && !isAbortEcho(failures[r])))) {
                failed = r;
            }
        }
        if (failed >= 0) {
            throw new IllegalStateException("rank " + failed + " failed: " + failures[failed].getMessage(),
                    failures[failed]);
        }
        long total = 0;
        for (long n : received) {
            total += n;
        }
        return total;
    }

    /** A rank that failed only because another one aborted the communicator. */
    private static boolean isAbortEcho(Throwable t) {
        return t.getMessage() != null && t.getMessage().contains("the communicator is aborted");
    }

    /**
     * Runs one rank's groups {@code executions} times on {@code comm} with host buffers (one per channel it
     * sends, one per channel it receives), and checks what it received.
     *
     * @param groups     this rank's groups, in order
     * @param comm       this rank's communicator; its addresses are host addresses
     * @param executions executions to run
     * @param bytes      bytes per transfer
     * @return the number of transfers received and checked
     * @throws IllegalStateException on wrong bytes, or what the communicator throws
     */
    public static long runRank(List<CommGroup> groups, Communicator comm, int executions, long bytes) {
        long received = 0;
        try (Arena arena = Arena.ofConfined()) {
            Map<Integer, MemorySegment> sendBuffers = new HashMap<>();
            Map<Integer, MemorySegment> recvBuffers = new HashMap<>();
            for (CommGroup g : groups) {
                for (CommOp op : g.ops()) {
                    (op.kind() == CommOp.Kind.SEND ? sendBuffers : recvBuffers)
                            .computeIfAbsent(op.channel(), c -> arena.allocate(bytes, 64));
                }
            }
            for (int n = 0; n < executions; n++) {
                for (CommGroup g : groups) {
                    for (CommOp op : g.ops()) {
                        if (op.kind() == CommOp.Kind.SEND) {
                            fill(sendBuffers.get(op.channel()), op.channel(), n);
                        } else {
                            recvBuffers.get(op.channel()).fill((byte) 0);
                        }
                    }
                    boolean grouped = g.ops().size() > 1;
                    if (grouped) {
                        comm.groupStart();
                    }
                    for (CommOp op : g.ops()) {
                        if (op.kind() == CommOp.Kind.SEND) {
                            comm.send(sendBuffers.get(op.channel()).address(), bytes, op.peer());
                        } else {
                            comm.recv(recvBuffers.get(op.channel()).address(), bytes, op.peer());
                        }
                    }
                    if (grouped) {
                        comm.groupEnd();
                    }
                    comm.synchronize();
                    for (CommOp op : g.ops()) {
                        if (op.kind() == CommOp.Kind.RECV) {
                            check(recvBuffers.get(op.channel()), op.channel(), n, comm.rank(), op.peer());
                            received++;
                        }
                    }
                }
            }
        }
        return received;
    }

    /**
     * The byte the runner sends at {@code offset} of channel {@code channel}'s value for execution {@code execution}.
     *
     * @param channel   channel id
     * @param execution execution number
     * @param offset    byte offset
     * @return the byte
     */
    public static byte pattern(int channel, long execution, long offset) {
        long x = (channel + 1) * 0x9E3779B97F4A7C15L ^ (execution + 1) * 0xC2B2AE3D27D4EB4FL ^ offset * 0x165667B19E3779F9L;
        x ^= x >>> 29;
        return (byte) (x ^ (x >>> 17));
    }

    private static void fill(MemorySegment buffer, int channel, long execution) {
        for (long i = 0; i < buffer.byteSize(); i++) {
            buffer.set(ValueLayout.JAVA_BYTE, i, pattern(channel, execution, i));
        }
    }

    private static void check(MemorySegment buffer, int channel, long execution, int rank, int peer) {
        for (long i = 0; i < buffer.byteSize(); i++) {
            byte got = buffer.get(ValueLayout.JAVA_BYTE, i);
            byte expected = pattern(channel, execution, i);
            if (got != expected) {
                throw new IllegalStateException(String.format(Locale.ROOT, "rank %d received wrong data for c%d of execution %d from "
                        + "rank %d at byte %d: expected 0x%02x, got 0x%02x", rank, channel, execution, peer, i,
                        expected & 0xFF, got & 0xFF));
            }
        }
    }
}
