package dev.kiln.transport.gpu;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.Channel;

/**
 * A {@link Channel} for {@code Transport.NCCL}: the writer sends a device tensor to each reader with
 * {@link Communicator#send}, each reader receives it into its own device slots ({@code spec.slots()} of
 * {@code spec.slotBytes()}, allocated by the reader end) with {@link Communicator#recv}. One end per
 * participant: {@link #writer} and {@link #reader}.
 *
 * <p><b>Byte counts.</b> NCCL needs the receiver to post a receive of exactly the sent size. Per value, the
 * writer first publishes a small header (element type and shape, an {@code I64} host tensor) on a host
 * side channel, {@code meta}, that the caller builds between the same participants (in-process, shared
 * memory or Aeron UDP, like any host edge; it must carry host {@code Tensor}s and error records); a reader
 * that polls the header posts a receive of exactly that many bytes. So a transfer moves the tensor's bytes,
 * not a full slot, and the reader learns the shape. Error records and null travel on {@code meta} alone and
 * both sides skip the transfer, so every pair still issues matching operations in the same order. The
 * side channel's slots are the back-pressure: {@link #offer} returns false when they are full.
 *
 * <p><b>Order.</b> Each {@link #offer} issues one group of sends (one per reader, between
 * {@code groupStart}/{@code groupEnd}) and each {@link #poll} that returns a tensor one receive: exactly the
 * groups of {@code ExecutionPlan.nccl()}, as long as every rank's actor runs its schedule's NCCL operations
 * in schedule order. Streams: the communicator's stream waits for an event recorded on the tensor's stream
 * before the sends, and the tensor's stream then waits for the sends (so the writer may reuse the tensor on
 * its stream); a receive into a slot waits for the reader's release event of that slot, and the reader's
 * stream waits for the receive. Nothing waits on the host, with {@link NcclCommunicator} as with
 * {@link SimulatedCommunicator}. Every device call names the end's device.
 *
 * <p>{@link #warm} puts the first (slow, connection-setting) transfer of each pair ahead of the first
 * execution. A tensor larger than a slot, or on another device than the writer's, is refused with an
 * {@link IllegalArgumentException} before anything is sent or published.
 *
 * <p>The caller owns {@code meta} and the communicator and closes them after this channel's ends (abort
 * the communicator first when a peer died). Threads as in {@link Channel}. <b>Not yet verified on a
 * GPU</b>; tested with {@link SimulatedCommunicator} over {@link SimulatedDeviceOps}.
 */
public final class NcclChannel implements Channel {

    private final ChannelSpec spec;
    private final Channel meta;
    private final Communicator comm;
    private final DeviceOps ops;
    private final int device;
    /** This end's reader index, or -1 at the writer end. */
    private final int reader;
    private final int slotCount;
    private final long stride;
    private final long commStream;

    // writer end
    private final int[] readerRanks;
    private final GpuSlots.Headers headers;
    private final long producerReady;
    private final long sent;
    /** The sequence whose sends were issued last; its header may still wait for the side channel. */
    private long sentSequence = -1;
    private long warmBuffer;

    // reader end
    private final int writerRank;
    private final long stream;
    private final long slots;
    private final long[] ready;
    private final long[] released;
    private final DeviceTensor[] views;
    private final boolean[] held;
    private long receivedSequence = -1;

    private boolean closed;

    private NcclChannel(ChannelSpec spec, NcclSchedule schedule, Channel meta, Communicator comm, DeviceOps ops,
                        int device, int reader, long commStream, long stream) {
        if (meta.spec().slots() != spec.slots() || meta.spec().readers().size() != spec.readers().size()) {
            throw new IllegalArgumentException("channel c" + spec.id() + ": its side channel must have the same slots and"
                    + " readers, has " + meta.spec().slots() + " slots and " + meta.spec().readers().size() + " readers");
        }
        this.spec = spec;
        this.meta = meta;
        this.comm = comm;
        this.ops = ops;
        this.device = device;
        this.reader = reader;
        this.slotCount = spec.slots();
        this.stride = GpuSlots.stride(spec.slotBytes());
        this.commStream = commStream;
        this.readerRanks = new int[spec.readers().size()];
        for (int r = 0; r < readerRanks.length; r++) {
            readerRanks[r] = rank(spec, schedule, spec.readers().get(r));
        }
        this.writerRank = rank(spec, schedule, spec.writer());
        int mine = reader < 0 ? writerRank : readerRanks[reader];
        if (comm.rank() != mine) {
            throw new IllegalArgumentException("channel c" + spec.id() + ": this end is rank " + mine + " of the plan's"
                    + " NCCL schedule, the communicator is rank " + comm.rank());
        }
        boolean writer = reader < 0;
        // Twice the slots: the header of sequence n overwrites that of n - 2N, released since n - 1 was accepted.
        this.headers = writer ? new GpuSlots.Headers(2 * slotCount) : null;
        this.ready = writer ? null : new long[slotCount];
        this.released = writer ? null : new long[slotCount];
        this.views = writer ? null : new DeviceTensor[slotCount];
        this.held = writer ? null : new boolean[slotCount];
        this.stream = stream;
        long pr = 0;
        long se = 0;
        long base = 0;
        try {
            if (writer) {
                pr = ops.createEvent(device, false);
                se = ops.createEvent(device, false);
            } else {
                base = ops.allocate(device, stride * slotCount);
                for (int s = 0; s < slotCount; s++) {
                    ready[s] = ops.createEvent(device, false);
                    released[s] = ops.createEvent(device, false);
                }
            }
        } catch (RuntimeException e) {
            RuntimeException f = GpuResources.destroyEvent(ops, pr, e);
            f = GpuResources.destroyEvent(ops, se, f);
            f = GpuResources.free(ops, base, f);
            for (int s = 0; !writer && s < slotCount; s++) {
                f = GpuResources.destroyEvent(ops, ready[s], f);
                f = GpuResources.destroyEvent(ops, released[s], f);
            }
            if (headers != null) {
                headers.close();
            }
            throw f;
        }
        this.producerReady = pr;
        this.sent = se;
        this.slots = base;
    }

    private static int rank(ChannelSpec spec, NcclSchedule schedule, int actor) {
        int rank = schedule.rankOf(actor);
        if (rank < 0) {
            throw new IllegalArgumentException("channel c" + spec.id() + ": participant " + actor + " is no rank of the"
                    + " plan's NCCL schedule " + schedule.ranks());
        }
        return rank;
    }

    /**
     * The writer's end.
     *
     * @param spec       the plan's channel ({@code NCCL})
     * @param schedule   the plan's {@code nccl()}: the ranks of the writer and readers
     * @param meta       the side channel for headers, with the same slots and readers; offered to by this end
     * @param comm       the writer's rank of the plan's communicator
     * @param ops        the device operations ({@link CudaDeviceOps} on a GPU)
     * @param device     the writer's GPU
     * @param commStream the stream the communicator enqueues on (the one given to {@link NcclCommunicator#join})
     * @return the end
     * @throws IllegalArgumentException if a participant has no rank, or {@code comm} is not the writer's rank
     */
    public static NcclChannel writer(ChannelSpec spec, NcclSchedule schedule, Channel meta, Communicator comm,
                                     DeviceOps ops, int device, long commStream) {
        return new NcclChannel(spec, schedule, meta, comm, ops, device, -1, commStream, 0);
    }

    /**
     * A reader's end: allocates its receive slots on {@code device}.
     *
     * @param spec       the plan's channel ({@code NCCL})
     * @param schedule   the plan's {@code nccl()}
     * @param meta       the side channel for headers, polled by this end as {@code reader}
     * @param comm       this reader's rank of the plan's communicator
     * @param reader     the reader index in {@code spec.readers()}
     * @param ops        the device operations
     * @param device     the reader's GPU
     * @param commStream the stream the communicator enqueues on
     * @param stream     the stream the reader's work runs on (0: the default stream)
     * @return the end
     * @throws IllegalArgumentException if a participant has no rank, or {@code comm} is not this reader's rank
     */
    public static NcclChannel reader(ChannelSpec spec, NcclSchedule schedule, Channel meta, Communicator comm,
                                     int reader, DeviceOps ops, int device, long commStream, long stream) {
        if (reader < 0 || reader >= spec.readers().size()) {
            throw new IllegalArgumentException("channel c" + spec.id() + " has readers 0 to " + (spec.readers().size() - 1)
                    + ", got " + reader);
        }
        return new NcclChannel(spec, schedule, meta, comm, ops, device, reader, commStream, stream);
    }

    /**
     * Issues one 1-byte transfer from the writer to each reader, ahead of every execution's: NCCL connects a pair
     * on its first transfer, which would otherwise land in the first execution. Every end of every NCCL channel
     * calls it once, on its rank's thread before the rank's first execution, going through the rank's ends in
     * increasing channel id: every rank then issues these transfers in the same global order, so they cannot
     * deadlock, and the ranks warm up all at once. Like every operation here it is enqueued; the host does not
     * wait for it.
     */
    public void warm() {
        if (reader < 0) {
            if (warmBuffer == 0) {
                warmBuffer = ops.allocate(device, GpuSlots.ALIGN);
            }
            comm.groupStart();
            for (int rank : readerRanks) {
                comm.send(warmBuffer, 1, rank);
            }
            comm.groupEnd();
        } else {
            comm.recv(slots, 1, writerRank);
        }
    }

    @Override
    public ChannelSpec spec() {
        return spec;
    }

    /** Writer end only. */
    @Override
    public boolean isFree(long sequence) {
        return meta.isFree(sequence);
    }

    /**
     * Sends a device tensor to every reader in one group, then publishes its header on the side channel (the
     * sends are issued once the side channel has room for the header, and once per sequence: a retry after the
     * side channel refused only publishes); other values go on the side channel alone. Writer end only.
     *
     * @return false if the side channel is full
     * @throws IllegalArgumentException if the tensor is on another device than the writer's, larger than a slot or
     *                                  of more than {@value GpuSlots#MAX_RANK} dimensions, or the value is a host
     *                                  tensor; nothing is sent or published
     * @throws IllegalStateException    at a reader end, or from the communicator (nothing is published; the graph
     *                                  must fail and abort the communicator, which frees the readers)
     */
    @Override
    public boolean offer(long sequence, Object value) {
        if (reader >= 0) {
            throw new IllegalStateException("channel c" + spec.id() + ": this is reader " + reader + "'s end; only the"
                    + " writer end offers");
        }
        DeviceTensor t = GpuSlots.check(spec, value, device);
        if (t == null) {
            return meta.offer(sequence, value);
        }
        Tensor header = headers.encode(spec, (int) (sequence % (2L * slotCount)), t);
        if (sentSequence != sequence) {
            // Sends go first, once the header is sure to find room: a failed send publishes nothing, so no reader
            // waits for bytes that never come; and no send waits on the stream for room the reader must free.
            if (!meta.isFree(sequence)) {
                return false;
            }
            if (t.byteSize() > 0) {
                ops.recordEvent(device, producerReady, t.stream());
                ops.waitEvent(device, commStream, producerReady);
                comm.groupStart();
                for (int rank : readerRanks) {
                    comm.send(t.pointer(), t.byteSize(), rank);
                }
                comm.groupEnd();
                ops.recordEvent(device, sent, commStream);
                ops.waitEvent(device, t.stream(), sent);
            }
            sentSequence = sequence;
        }
        return meta.offer(sequence, header);
    }

    /**
     * Reads the value of {@code sequence}: once its header is on the side channel, receives the tensor into this
     * reader's slot and returns a view of it on the reader's stream, borrowed until {@link #release}. Other values
     * come back as the side channel has them. This reader's end only.
     *
     * @throws IllegalArgumentException if {@code reader} is not this end's reader
     * @throws IllegalStateException    if a header is corrupt (an unknown element type, more than
     *                                  {@value GpuSlots#MAX_RANK} dimensions, a negative one) or announces more than a
     *                                  slot holds, before anything is received; or from the communicator
     */
    @Override
    public Object poll(int reader, long sequence) {
        checkReader(reader);
        Object value = meta.poll(reader, sequence);
        if (!GpuSlots.isHeader(value)) {
            return value;
        }
        int slot = (int) (sequence % slotCount);
        if (receivedSequence == sequence) {
            return views[slot];
        }
        Tensor header = (Tensor) value;
        long bytes = GpuSlots.checkHeader(spec, sequence, header);
        long at = slots + slot * stride;
        if (bytes > 0) {
            ops.waitEvent(device, commStream, released[slot]);
            comm.recv(at, bytes, writerRank);
            ops.recordEvent(device, ready[slot], commStream);
            ops.waitEvent(device, stream, ready[slot]);
        }
        held[slot] = true;
        receivedSequence = sequence;
        DeviceTensor view = GpuSlots.fromHeader(views[slot], device, at, stream, header);
        views[slot] = view;
        return view;
    }

    /** Records the slot's release event on this reader's stream, then releases the sequence on the side channel. */
    @Override
    public void release(int reader, long sequence) {
        checkReader(reader);
        int slot = (int) (sequence % slotCount);
        if (held[slot]) {
            held[slot] = false;
            ops.recordEvent(device, released[slot], stream);
        }
        meta.release(reader, sequence);
    }

    private void checkReader(int r) {
        if (r != reader) {
            throw new IllegalArgumentException("channel c" + spec.id() + ": this end belongs to "
                    + (reader < 0 ? "the writer" : "reader " + reader) + ", not reader " + r);
        }
    }

    @Override
    public boolean crossesProcesses() {
        return meta.crossesProcesses();
    }

    @Override
    public boolean awaitPublished(int reader, long sequence, long timeoutNanos) {
        return meta.awaitPublished(reader, sequence, timeoutNanos);
    }

    @Override
    public boolean awaitReleased(long sequence, long timeoutNanos) {
        return meta.awaitReleased(sequence, timeoutNanos);
    }

    @Override
    public String peerLoss(int side) {
        return meta.peerLoss(side);
    }

    /**
     * Frees this end's slots, buffers and events; leaves {@code meta} and the communicator to the caller.
     * The writer end frees the header memory that an in-process {@code meta} hands its readers by reference,
     * so close it after its readers stop reading. Idempotent; no other call may follow or race.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException failure = null;
        if (reader < 0) {
            failure = GpuResources.destroyEvent(ops, producerReady, null);
            failure = GpuResources.destroyEvent(ops, sent, failure);
            failure = GpuResources.free(ops, warmBuffer, failure);
            headers.close();
        } else {
            for (int s = 0; s < slotCount; s++) {
                failure = GpuResources.destroyEvent(ops, ready[s], failure);
                failure = GpuResources.destroyEvent(ops, released[s], failure);
            }
            failure = GpuResources.free(ops, slots, failure);
        }
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public String toString() {
        return "NcclChannel(c" + spec.id() + ", " + (reader < 0 ? "writer" : "reader " + reader) + ", rank "
                + comm.rank() + " on gpu" + device + ")";
    }
}
