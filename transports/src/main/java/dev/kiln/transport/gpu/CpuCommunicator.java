package dev.kiln.transport.gpu;

import dev.kiln.tensor.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A {@link Communicator} over host memory whose ranks are threads of one JVM: it copies bytes
 * between host addresses with NCCL's matching, blocking and grouping rules, so it runs the NCCL
 * schedules of a plan where there is no GPU, and a wrong order deadlocks here as it would on GPUs.
 * A wait longer than the timeout aborts the whole communicator: every rank's pending and later calls
 * throw {@link IllegalStateException} naming the rank and operation that timed out.
 *
 * <p>Not a fast path: one lock for all ranks, the copy done under it by whichever rank completes the
 * match. For tests and CI. Addresses are host addresses ({@code MemorySegment.address()} of native
 * memory) that stay valid until the operation returns; an invalid address crashes the JVM.
 */
public final class CpuCommunicator implements Communicator {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final World world;
    private final int rank;
    private final List<Op> group = new ArrayList<>();
    private int groupDepth;
    private long collectives;
    private boolean closed;

    private CpuCommunicator(World world, int rank) {
        this.world = world;
        this.rank = rank;
    }

    /**
     * Creates the ranks of one communicator.
     *
     * @param size    the number of ranks, >= 1
     * @param timeout how long a call may wait for its peers before it aborts the communicator, > 0
     * @return rank 0 to {@code size - 1}; give each to the thread that plays it
     * @throws IllegalArgumentException on a size below 1 or a timeout that is not positive
     */
    public static List<CpuCommunicator> create(int size, Duration timeout) {
        if (size < 1) {
            throw new IllegalArgumentException("size must be >= 1, got " + size);
        }
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be > 0, got " + timeout);
        }
        World world = new World(size, timeout.toNanos());
        List<CpuCommunicator> ranks = new ArrayList<>();
        for (int r = 0; r < size; r++) {
            ranks.add(new CpuCommunicator(world, r));
        }
        return List.copyOf(ranks);
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int size() {
        return world.size;
    }

    @Override
    public void send(long address, long bytes, int peer) {
        issue(new Op(Op.Kind.SEND, rank, checkPeer(peer), address, 0, checkBytes(bytes), null));
    }

    @Override
    public void recv(long address, long bytes, int peer) {
        issue(new Op(Op.Kind.RECV, checkPeer(peer), rank, address, 0, checkBytes(bytes), null));
    }

    @Override
    public void allReduce(long sendAddress, long recvAddress, long count, DType dtype) {
        if (dtype == null) {
            throw new NullPointerException("dtype");
        }
        if (count > (Integer.MAX_VALUE - 8) / dtype.byteSize()) {
            throw new IllegalArgumentException("CpuCommunicator reduces less than 2 GiB at once, not " + count + " "
                    + dtype);
        }
        Op op = new Op(Op.Kind.ALL_REDUCE, rank, rank, sendAddress, recvAddress, checkBytes(count), dtype);
        op.sequence = collectives++;
        issue(op);
    }

    @Override
    public void groupStart() {
        checkOpen();
        groupDepth++;
    }

    @Override
    public void groupEnd() {
        checkOpen();
        if (groupDepth == 0) {
            throw new IllegalStateException("groupEnd without groupStart on rank " + rank);
        }
        if (--groupDepth == 0) {
            List<Op> ops = List.copyOf(group);
            group.clear();
            world.postAndWait(ops, this);
        }
    }

    /** Operations complete before their call returns: nothing to wait for. */
    @Override
    public void synchronize() {
        checkOpen();
    }

    /** Aborts the whole communicator: every rank's pending and later calls throw. */
    @Override
    public void abort() {
        world.abort("rank " + rank + " aborted the communicator");
    }

    /** Closes this rank; the others are unaffected. */
    @Override
    public void close() {
        closed = true;
    }

    /** @return {@code CpuCommunicator[rank r of n]} */
    @Override
    public String toString() {
        return "CpuCommunicator[rank " + rank + " of " + world.size + "]";
    }

    private void issue(Op op) {
        checkOpen();
        if (groupDepth > 0) {
            group.add(op);
        } else {
            world.postAndWait(List.of(op), this);
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("rank " + rank + " of this CpuCommunicator is closed");
        }
    }

    private int checkPeer(int peer) {
        if (peer < 0 || peer >= world.size) {
            throw new IllegalArgumentException("peer " + peer + " is not a rank of this communicator (0 to "
                    + (world.size - 1) + ")");
        }
        return peer;
    }

    private static long checkBytes(long n) {
        if (n < 0) {
            throw new IllegalArgumentException("size must be >= 0, got " + n);
        }
        return n;
    }

    /** One issued operation; {@code from -> to} for point-to-point, the rank twice for a collective. */
    private static final class Op {
        enum Kind { SEND, RECV, ALL_REDUCE }

        final Kind kind;
        final int from;
        final int to;
        final long address;
        final long recvAddress;
        final long size;
        final DType dtype;
        long sequence;
        boolean done;

        Op(Kind kind, int from, int to, long address, long recvAddress, long size, DType dtype) {
            this.kind = kind;
            this.from = from;
            this.to = to;
            this.address = address;
            this.recvAddress = recvAddress;
            this.size = size;
            this.dtype = dtype;
        }

        @Override
        public String toString() {
            return switch (kind) {
                case SEND -> "send of " + size + " B to rank " + to;
                case RECV -> "receive of " + size + " B from rank " + from;
                case ALL_REDUCE -> "all-reduce " + sequence + " of " + size + " " + dtype;
            };
        }
    }

    /** What the ranks share: unmatched operations per ordered pair, collectives being joined. */
    private static final class World {
        final int size;
        final long timeoutNanos;
        final ReentrantLock lock = new ReentrantLock();
        final Condition changed = lock.newCondition();
        final Map<Long, ArrayDeque<Op>> sends = new HashMap<>();
        final Map<Long, ArrayDeque<Op>> recvs = new HashMap<>();
        final Map<Long, Op[]> collectives = new HashMap<>();
        String aborted;

        World(int size, long timeoutNanos) {
            this.size = size;
            this.timeoutNanos = timeoutNanos;
        }

        void abort(String why) {
            lock.lock();
            try {
                if (aborted == null) {
                    aborted = why;
                }
                changed.signalAll();
            } finally {
                lock.unlock();
            }
        }

        void postAndWait(List<Op> ops, CpuCommunicator caller) {
            lock.lock();
            try {
                checkAborted(caller);
                for (Op op : ops) {
                    post(op);
                }
                changed.signalAll();
                long left = timeoutNanos;
                for (Op op : ops) {
                    while (!op.done) {
                        checkAborted(caller);
                        if (left <= 0) {
                            String why = "rank " + caller.rank + " waited " + Duration.ofNanos(timeoutNanos)
                                    + " for its " + op + " to be matched: the ranks issue their operations in orders "
                                    + "that deadlock (or a peer is gone)";
                            aborted = why;
                            changed.signalAll();
                            throw new IllegalStateException(why);
                        }
                        left = changed.awaitNanos(left);
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("rank " + caller.rank + " was interrupted while waiting", e);
            } finally {
                lock.unlock();
            }
        }

        private void checkAborted(CpuCommunicator caller) {
            if (aborted != null) {
                throw new IllegalStateException("rank " + caller.rank + ": the communicator is aborted: " + aborted);
            }
        }

        private void post(Op op) {
            switch (op.kind) {
                case SEND -> {
                    sends.computeIfAbsent(pair(op), k -> new ArrayDeque<>()).add(op);
                    match(pair(op));
                }
                case RECV -> {
                    recvs.computeIfAbsent(pair(op), k -> new ArrayDeque<>()).add(op);
                    match(pair(op));
                }
                case ALL_REDUCE -> {
                    Op[] joined = collectives.computeIfAbsent(op.sequence, k -> new Op[size]);
                    joined[op.from] = op;
                    for (Op o : joined) {
                        if (o == null) {
                            return;
                        }
                    }
                    collectives.remove(op.sequence);
                    reduce(joined);
                }
            }
        }

        private static long pair(Op op) {
            return ((long) op.from << 32) | op.to;
        }

        private void match(long pair) {
            ArrayDeque<Op> s = sends.get(pair);
            ArrayDeque<Op> r = recvs.get(pair);
            while (s != null && r != null && !s.isEmpty() && !r.isEmpty()) {
                Op send = s.poll();
                Op recv = r.poll();
                if (send.size != recv.size) {
                    aborted = "rank " + send.from + " sends " + send.size + " B to rank " + send.to
                            + ", whose matching receive asks for " + recv.size + " B: the pair issues its operations "
                            + "in different orders, or the sizes disagree";
                    return;
                }
                copy(send.address, recv.address, send.size);
                send.done = true;
                recv.done = true;
            }
        }

        @SuppressWarnings("restricted") // host addresses the ranks passed in, valid until their calls return
        private static MemorySegment at(long address, long bytes) {
            return MemorySegment.ofAddress(address).reinterpret(bytes);
        }

        private static void copy(long from, long to, long bytes) {
            if (bytes > 0) {
                MemorySegment.copy(at(from, bytes), 0, at(to, bytes), 0, bytes);
            }
        }

        private void reduce(Op[] ops) {
            Op first = ops[0];
            for (Op op : ops) {
                if (op.size != first.size || op.dtype != first.dtype) {
                    aborted = "all-reduce " + first.sequence + ": rank 0 reduces " + first.size + " " + first.dtype
                            + " but rank " + op.from + " " + op.size + " " + op.dtype;
                    return;
                }
            }
            long bytes = first.size * first.dtype.byteSize();
            // Read every input before writing any result: a rank's output may be its input.
            List<MemorySegment> inputs = new ArrayList<>();
            for (Op op : ops) {
                inputs.add(MemorySegment.ofArray(at(op.address, bytes).toArray(ValueLayout.JAVA_BYTE)));
            }
            MemorySegment sum = MemorySegment.ofArray(new byte[(int) bytes]);
            for (long i = 0; i < first.size; i++) {
                add(first.dtype, inputs, sum, i);
            }
            for (Op op : ops) {
                MemorySegment.copy(sum, 0, at(op.recvAddress, bytes), 0, bytes);
                op.done = true;
            }
        }

        private static void add(DType dtype, List<MemorySegment> inputs, MemorySegment sum, long i) {
            switch (dtype) {
                case F32 -> {
                    float s = 0;
                    for (MemorySegment in : inputs) {
                        s += in.getAtIndex(F32, i);
                    }
                    sum.setAtIndex(F32, i, s);
                }
                case F64 -> {
                    double s = 0;
                    for (MemorySegment in : inputs) {
                        s += in.getAtIndex(F64, i);
                    }
                    sum.setAtIndex(F64, i, s);
                }
                case I32 -> {
                    int s = 0;
                    for (MemorySegment in : inputs) {
                        s += in.getAtIndex(I32, i);
                    }
                    sum.setAtIndex(I32, i, s);
                }
                case I64 -> {
                    long s = 0;
                    for (MemorySegment in : inputs) {
                        s += in.getAtIndex(I64, i);
                    }
                    sum.setAtIndex(I64, i, s);
                }
                case I8, U8 -> {
                    byte s = 0; // two's complement: the same bits for signed and unsigned, wrapping like NCCL
                    for (MemorySegment in : inputs) {
                        s += in.get(ValueLayout.JAVA_BYTE, i);
                    }
                    sum.set(ValueLayout.JAVA_BYTE, i, s);
                }
                case F16 -> {
                    float s = 0;
                    for (MemorySegment in : inputs) {
                        s += Float.float16ToFloat(in.getAtIndex(I16, i));
                    }
                    sum.setAtIndex(I16, i, Float.floatToFloat16(s));
                }
                case BF16 -> {
                    float s = 0;
                    for (MemorySegment in : inputs) {
                        s += Float.intBitsToFloat(in.getAtIndex(I16, i) << 16);
                    }
                    sum.setAtIndex(I16, i, toBf16(s));
                }
            }
        }

        /** Rounds to nearest, ties to even; NaN stays NaN. */
        private static short toBf16(float f) {
            int bits = Float.floatToRawIntBits(f);
            if (Float.isNaN(f)) {
                return (short) ((bits >>> 16) | 0x40);
            }
            int rounded = bits + 0x7FFF + ((bits >>> 16) & 1);
            return (short) (rounded >>> 16);
        }
    }
}
