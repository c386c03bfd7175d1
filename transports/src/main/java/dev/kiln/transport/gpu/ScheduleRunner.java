package dev.kiln.transport.gpu;

import dev.kiln.compiler.ExecutionPlan.CommGroup;
import dev.kiln.compiler.ExecutionPlan.CommOp;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;
import dev.kiln.tensor.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Runs the NCCL part of a plan ({@link NcclSchedule}) on simulated GPUs, one device and one thread per rank
 * over {@link SimulatedCommunicator}s, so the communication order the compiler produced runs for real in CI:
 * each rank issues its groups in order for every execution (a group of several operations between
 * {@code groupStart} and {@code groupEnd}) and waits for each, a writer sends the value of channel c for
 * execution n as {@code bytes} bytes of a pattern that depends on (c, n, offset), and a receiver checks every
 * byte it received. A wrong order deadlocks, as on NCCL; a rank that waits past the timeout aborts the run.
 *
 * <p>Only the communication runs: no actor code, no other channel.
 */
public final class ScheduleRunner {

    private ScheduleRunner() {
    }

    /**
     * Runs every rank of {@code schedule} on its own thread and simulated device until each has done
     * {@code executions} executions, and checks every byte received.
     *
     * @param schedule   the per-rank groups, e.g. {@code plan.nccl()}
     * @param executions executions to run, >= 1
     * @param bytes      bytes each transfer carries, >= 1
     * @param timeout    how long a rank may wait for one group before the run fails
     * @return the number of transfers received and checked, plus the all-reduces completed (each checked on every member)
     * @throws IllegalStateException naming the first rank that failed and why: wrong bytes, a size mismatch, or a
     *                               wait past the timeout (a deadlock)
     */
    public static long run(NcclSchedule schedule, int executions, long bytes, Duration timeout) {
        if (executions < 1 || bytes < 1) {
            throw new IllegalArgumentException("executions and bytes must be >= 1, got " + executions + " and " + bytes);
        }
        int size = schedule.size();
        if (size == 0) {
            return 0;
        }
        int buffers = 1;
        for (List<CommGroup> groups : schedule.groups()) {
            int n = 0;
            for (CommGroup g : groups) {
                n += g.ops().size();
            }
            buffers = Math.max(buffers, n);
        }
        long perDevice = Math.max(SimulatedGpus.MIN_BYTES, (long) buffers * (Math.ceilDiv(bytes, 256) * 256) + (1 << 20));
        try (SimulatedDeviceOps gpus = SimulatedDeviceOps.create(SimulatedGpus.of(size, perDevice))) {
            // Communicator 0 over the ranks with point-to-point operations, one per distinct member set of collectives.
            int p2p = pointToPointSize(schedule);
            List<Communicator> all = new ArrayList<>();
            List<Communicator> ranks = new ArrayList<>();
            byte[] id = gpus.newCommunicatorId();
            for (int r = 0; r < size; r++) {
                Communicator c = r < p2p ? gpus.joinCommunicator(p2p, id, r, r, 0) : null;
                ranks.add(c);
                if (c != null) {
                    all.add(c);
                }
            }
            List<Map<Integer, Communicator>> collectives = new ArrayList<>();
            for (int r = 0; r < size; r++) {
                collectives.add(new HashMap<>());
            }
            Map<List<Integer>, Map<Integer, Communicator>> bySet = new HashMap<>();
            for (Map.Entry<Integer, List<Integer>> e : collectiveMembers(schedule).entrySet()) {
                List<Integer> set = e.getValue().stream().sorted().toList();
                Map<Integer, Communicator> comms = bySet.computeIfAbsent(set, k -> {
                    byte[] setId = gpus.newCommunicatorId();
                    Map<Integer, Communicator> joined = new HashMap<>();
                    for (int r : set) {
                        Communicator c = gpus.joinCommunicator(set.size(), setId, commRank(schedule.groups().get(r),
                                e.getKey()), r, 0);
                        joined.put(r, c);
                        all.add(c);
                    }
                    return joined;
                });
                for (int r : set) {
                    collectives.get(r).put(e.getKey(), comms.get(r));
                }
            }
            long[] received = new long[size];
            Throwable[] failures = new Throwable[size];
            AtomicInteger firstFailure = new AtomicInteger(-1);
            List<Thread> threads = new ArrayList<>();
            for (int r = 0; r < size; r++) {
                int rank = r;
                threads.add(Thread.ofPlatform().name("kiln-rank-" + r).start(() -> {
                    Communicator comm = ranks.get(rank);
                    try {
                        if (comm != null) {
                            comm.awaitReady(timeout);
                        }
                        for (Communicator c : collectives.get(rank).values()) {
                            c.awaitReady(timeout);
                        }
                        received[rank] = runRank(schedule.groups().get(rank), comm, collectives.get(rank), gpus,
                                rank, executions, bytes, timeout);
                    } catch (Throwable t) {
                        failures[rank] = t;
                        // before the aborts, which end the other ranks' operations and make them fail in turn
                        firstFailure.compareAndSet(-1, rank);
                        all.forEach(Communicator::abort);
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
            all.forEach(c -> c.finish(timeout));
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
            int failed = firstFailure.get();
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
    }

    /**
     * Runs one rank's groups {@code executions} times, with one buffer on its device per channel it sends, per
     * channel it receives and per collective it joins, waits for each group, and checks what it received: the
     * exact bytes of every transfer, and for every all-reduce the sum of every member's contribution (each member
     * adds its rank of the collective's communicator to a pattern, summed as {@code U8}).
     *
     * @param groups      this rank's groups, in order
     * @param comm        this rank's point-to-point communicator (communicator 0), ready, enqueueing on its device's
     *                    default stream; null if it has no point-to-point operation
     * @param collectives this rank's communicator of each collective it joins, by collective id, on the same device and
     *                    stream
     * @param gpus        the simulated GPUs of the communicators
     * @param device      this rank's device
     * @param executions  executions to run
     * @param bytes       bytes per transfer
     * @param timeout     how long one group may take
     * @return the number of transfers received, plus the all-reduces checked where this rank is its communicator's rank 0
     * @throws IllegalStateException on wrong bytes, a group that did not complete in time, or what a communicator
     *                               throws; the communicators are then aborted, so that no operation is left pending
     */
    public static long runRank(List<CommGroup> groups, Communicator comm, Map<Integer, Communicator> collectives,
                               SimulatedDeviceOps gpus, int device, int executions, long bytes, Duration timeout) {
        long received = 0;
        Map<Integer, Long> sendBuffers = new HashMap<>();
        Map<Integer, Long> recvBuffers = new HashMap<>();
        Map<Integer, Long> sums = new HashMap<>();
        try {
            for (CommGroup g : groups) {
                for (CommOp op : g.ops()) {
                    (switch (op.kind()) {
                        case SEND -> sendBuffers;
                        case RECV -> recvBuffers;
                        case ALL_REDUCE -> sums;
                    }).computeIfAbsent(op.channel(), c -> gpus.allocate(device, bytes));
                }
            }
            for (int n = 0; n < executions; n++) {
                for (int k = 0; k < groups.size(); k++) {
                    CommGroup g = groups.get(k);
                    if (g.ops().getFirst().kind() == CommOp.Kind.ALL_REDUCE) {
                        CommOp op = g.ops().getFirst();
                        Communicator c = collectives.get(op.channel());
                        if (c == null) {
                            throw new IllegalArgumentException("rank on gpu" + device + " has no communicator for"
                                    + " all-reduce #" + op.channel());
                        }
                        long sum = sums.get(op.channel());
                        fill(gpus.memory(sum, bytes), ALL_REDUCE_PATTERN + op.channel(), n, c.rank());
                        c.allReduce(sum, sum, bytes, DType.U8);
                        await(gpus, c, timeout, "group " + k + " " + g + " of execution " + n);
                        checkSum(gpus.memory(sum, bytes), ALL_REDUCE_PATTERN + op.channel(), n, c);
                        received += c.rank() == 0 ? 1 : 0; // one per all-reduce, as ScheduleChecker counts them
                        continue;
                    }
                    for (CommOp op : g.ops()) {
                        if (op.kind() == CommOp.Kind.SEND) {
                            fill(gpus.memory(sendBuffers.get(op.channel()), bytes), op.channel(), n, 0);
                        } else {
                            gpus.memory(recvBuffers.get(op.channel()), bytes).fill((byte) 0);
                        }
                    }
                    boolean grouped = g.ops().size() > 1;
                    if (grouped) {
                        comm.groupStart();
                    }
                    for (CommOp op : g.ops()) {
                        if (op.kind() == CommOp.Kind.SEND) {
                            comm.send(sendBuffers.get(op.channel()), bytes, op.peer());
                        } else {
                            comm.recv(recvBuffers.get(op.channel()), bytes, op.peer());
                        }
                    }
                    if (grouped) {
                        comm.groupEnd();
                    }
                    await(gpus, comm, timeout, "group " + k + " " + g + " of execution " + n);
                    for (CommOp op : g.ops()) {
                        if (op.kind() == CommOp.Kind.RECV) {
                            check(gpus.memory(recvBuffers.get(op.channel()), bytes), op.channel(), n, comm.rank(),
                                    op.peer());
                            received++;
                        }
                    }
                }
            }
        } catch (RuntimeException e) {
            // an unmatched operation holds the stream until an abort, and cudaFree waits for the stream
            if (comm != null) {
                comm.abort();
            }
            collectives.values().forEach(Communicator::abort);
            throw e;
        } finally {
            sendBuffers.values().forEach(gpus::free);
            recvBuffers.values().forEach(gpus::free);
            sums.values().forEach(gpus::free);
        }
        return received;
    }

    /** Collective {@code k}'s contributions use pattern {@code ALL_REDUCE_PATTERN + k}, apart from every channel's. */
    private static final int ALL_REDUCE_PATTERN = 1 << 20;

    /** @return the size of communicator 0: one past the highest rank that sends, receives or is sent to */
    private static int pointToPointSize(NcclSchedule schedule) {
        int size = 0;
        for (int r = 0; r < schedule.size(); r++) {
            for (CommGroup g : schedule.groups().get(r)) {
                for (CommOp op : g.ops()) {
                    if (op.kind() != CommOp.Kind.ALL_REDUCE) {
                        size = Math.max(size, Math.max(r, op.peer()) + 1);
                    }
                }
            }
        }
        return size;
    }

    /** @return by collective id, the schedule ranks that issue it */
    private static Map<Integer, List<Integer>> collectiveMembers(NcclSchedule schedule) {
        Map<Integer, List<Integer>> members = new java.util.TreeMap<>();
        for (int r = 0; r < schedule.size(); r++) {
            for (CommGroup g : schedule.groups().get(r)) {
                for (CommOp op : g.ops()) {
                    if (op.kind() == CommOp.Kind.ALL_REDUCE) {
                        List<Integer> m = members.computeIfAbsent(op.channel(), k -> new ArrayList<>());
                        if (!m.contains(r)) {
                            m.add(r);
                        }
                    }
                }
            }
        }
        return members;
    }

    /** @return the rank a schedule rank has in the communicator of collective {@code k} (its ALL_REDUCE op's peer) */
    private static int commRank(List<CommGroup> groups, int k) {
        for (CommGroup g : groups) {
            for (CommOp op : g.ops()) {
                if (op.kind() == CommOp.Kind.ALL_REDUCE && op.channel() == k) {
                    return op.peer();
                }
            }
        }
        throw new IllegalArgumentException("no all-reduce #" + k);
    }

    private static void checkSum(MemorySegment buffer, int pattern, long execution, Communicator c) {
        int n = c.size();
        for (long i = 0; i < buffer.byteSize(); i++) {
            byte expected = (byte) (n * pattern(pattern, execution, i) + n * (n - 1) / 2);
            byte got = buffer.get(ValueLayout.JAVA_BYTE, i);
            if (got != expected) {
                throw new IllegalStateException(String.format(Locale.ROOT, "rank %d of an all-reduce of %d ranks got a"
                        + " wrong sum at byte %d of execution %d: expected 0x%02x, got 0x%02x", c.rank(), n, i, execution,
                        expected & 0xFF, got & 0xFF));
            }
        }
    }

    /** Waits for the rank's stream with a deadline, since a deadlocked schedule waits until an abort. */
    private static void await(SimulatedDeviceOps gpus, Communicator comm, Duration timeout, String what) {
        long deadline = System.nanoTime() + timeout.toNanos();
        long park = 10_000;
        while (!gpus.queryStream(comm.device(), 0)) {
            String error = comm.asyncError();
            if (error != null) {
                throw new IllegalStateException("rank " + comm.rank() + " in " + what + ": " + error);
            }
            if (System.nanoTime() - deadline > 0) {
                throw new IllegalStateException("rank " + comm.rank() + " waited " + timeout + " for its " + what
                        + " to complete: the ranks issue their operations in orders that deadlock (or a peer is gone)");
            }
            LockSupport.parkNanos(park);
            park = Math.min(park * 2, 1_000_000);
        }
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

    private static void fill(MemorySegment buffer, int channel, long execution, int plus) {
        for (long i = 0; i < buffer.byteSize(); i++) {
            buffer.set(ValueLayout.JAVA_BYTE, i, (byte) (pattern(channel, execution, i) + plus));
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
