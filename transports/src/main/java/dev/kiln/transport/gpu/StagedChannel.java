package dev.kiln.transport.gpu;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.Channel;
import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * A {@link Channel} for {@code Transport.STAGED}: a device tensor goes through host memory. The host
 * slots are a {@link ShmChannel} (so readers may be in the writer's JVM or in other JVMs of its host),
 * created without growth and pinned ({@link DeviceOps#pinHost}) in every process that copies to or from
 * it. One end per process side: {@link #createWriter} in the writer's process, {@link #openReader} for
 * each reader.
 *
 * <p>Writer: {@link #offer} claims the slot's tensor region, copies the tensor device to host on the
 * channel's copy stream (ordered after an event recorded on the tensor's stream), <b>waits for that copy
 * on the host</b>, then publishes a host {@link Tensor} view of the region; so when offer returns, the
 * writer may reuse the tensor. Other values (error records, null) are encoded as on any shared-memory
 * channel.
 *
 * <p>Readers: a reader with a GPU has one device buffer of {@code spec.slotBytes()} (the plan's model);
 * {@link #poll} enqueues the host-to-device copy into it on the reader's stream and returns a
 * {@link DeviceTensor} view of it on that stream, borrowed until {@link #release}, which waits for the copy
 * to finish before the host slot goes back to the writer. A reader without a GPU (the driver, a CPU actor)
 * gets the host {@link Tensor} view of the slot itself, also borrowed until release (copy it with
 * {@code Tensor.copyOf} to keep it): a device address would be of no use to it. A tensor larger than
 * {@code spec.slotBytes()} is refused with an {@link IllegalArgumentException} naming the channel, the size
 * and {@code CompileOptions.bufferBytes}; nothing is truncated or published.
 *
 * <p>Threads as in {@link Channel}. <b>Not yet verified on a GPU</b> (in particular {@code cudaHostRegister}
 * on a mapped {@code /dev/shm} file); tested with {@link SimulatedDeviceOps}.
 */
public final class StagedChannel implements Channel {

    private final ChannelSpec spec;
    private final DeviceOps ops;
    private final ShmChannel host;
    /** The reader index of a reader end; -1 at the writer end. */
    private final int reader;
    /** The writer's device, or the reader's ({@code NO_GPU}, -1, for a host reader). */
    private final int device;
    private final int slotCount;
    private final MemorySegment pinned;
    /** Writer: the copy stream. Reader with a GPU: its actor's stream (not owned). */
    private final long stream;
    /** Writer: recorded on the producer's stream. Reader: unused. */
    private final long producerReady;
    /** Writer: the device-to-host copy. Reader: the host-to-device copy. */
    private final long copied;
    /** Reader with a GPU: its device buffer. */
    private final long buffer;
    /** Writer only: per slot, the host view it published last, and the shape it claimed with. */
    private final Tensor[] hostViews;
    private final long[][] shapes;
    /** Reader with a GPU only: the view it returned last, and whether a copy into the buffer may be pending. */
    private DeviceTensor lastView;
    private boolean held;
    private boolean closed;

    private StagedChannel(ChannelSpec spec, DeviceOps ops, ShmChannel host, int reader, int device, long stream,
                          boolean ownStream) {
        this.spec = spec;
        this.ops = ops;
        this.host = host;
        this.reader = reader;
        this.device = device;
        this.slotCount = spec.slots();
        this.hostViews = reader < 0 ? new Tensor[slotCount] : null;
        this.shapes = reader < 0 ? new long[slotCount][] : null;
        boolean gpu = device >= 0;
        MemorySegment pin = null;
        long s = 0;
        long ready = 0;
        long done = 0;
        long buf = 0;
        try {
            if (gpu) {
                pin = host.slotMemory();
                ops.pinHost(pin);
                s = ownStream ? ops.createStream(device) : stream;
                ready = ownStream ? ops.createEvent(device, false) : 0;
                done = ops.createEvent(device, false);
                buf = ownStream ? 0 : ops.allocate(device, GpuSlots.stride(spec.slotBytes()));
            }
        } catch (RuntimeException e) {
            RuntimeException f = GpuResources.free(ops, buf, e);
            f = GpuResources.destroyEvent(ops, done, f);
            f = GpuResources.destroyEvent(ops, ready, f);
            if (ownStream) {
                f = GpuResources.destroyStream(ops, s, f);
            }
            if (pin != null) {
                MemorySegment p = pin;
                f = GpuResources.run(() -> ops.unpinHost(p), f);
            }
            f = GpuResources.run(host::close, f);
            throw f;
        }
        this.pinned = pin;
        this.stream = s;
        this.producerReady = ready;
        this.copied = done;
        this.buffer = buf;
    }

    /**
     * The host slots' spec: room for the tensor encoding's header (up to {@link GpuSlots#MAX_RANK} dimensions)
     * in front of {@code slotBytes} of data.
     */
    static ChannelSpec hostSpec(ChannelSpec spec) {
        return new ChannelSpec(spec.id(), spec.node(), spec.writer(), spec.readers(), spec.slots(),
                spec.slotBytes() + ValueCodec.tensorDataOffset(GpuSlots.MAX_RANK), spec.transport(), spec.reason());
    }

    /**
     * Creates the host slots and becomes the writer: pins them, makes a copy stream on {@code device}.
     *
     * @param spec         the plan's channel ({@code STAGED})
     * @param directory    where the host slots' file goes, usually {@link ShmChannel#DEFAULT_DIRECTORY}
     * @param name         unique among this process's channels in {@code directory} (see {@link ShmChannel#create})
     * @param codec        encodes values other than device tensors; readers need the same registered classes
     * @param ops          the device operations ({@link CudaDeviceOps} on a GPU)
     * @param device       the GPU the writer's tensors are on, >= 0
     * @param writerWaker  the writer thread's waker, or null
     * @param readerWakers per reader index, the waker of a reader in this process, else null
     * @return the writer end; readers open {@link #path()}
     * @throws IOException if the file cannot be created (see {@link ShmChannel#create})
     */
    public static StagedChannel createWriter(ChannelSpec spec, Path directory, String name, ValueCodec codec,
                                             DeviceOps ops, int device, Waker writerWaker, Waker[] readerWakers)
            throws IOException {
        if (device < 0) {
            throw new IllegalArgumentException("channel c" + spec.id() + ": the writer of a staged channel copies device"
                    + " tensors, so it needs a GPU, got device " + device);
        }
        ShmChannel host = ShmChannel.create(hostSpec(spec), directory, name, codec, false, writerWaker, readerWakers);
        return new StagedChannel(spec, ops, host, -1, device, 0, true);
    }

    /**
     * Opens the host slots for one reader.
     *
     * @param spec        the plan's channel ({@code STAGED})
     * @param file        the writer end's {@link #path()}
     * @param codec       decodes values other than device tensors
     * @param ops         the device operations; not used by a reader without a GPU
     * @param reader      the reader index in {@code spec.readers()}
     * @param device      the reader's GPU, or -1 ({@code ActorPlacement.NO_GPU}) for a reader without one, which
     *                    then reads host {@link Tensor}s
     * @param stream      the stream the reader's work runs on, on {@code device} (0: the device's default stream);
     *                      ignored without a GPU
     * @param readerWaker the reader's waker if the writer runs in this process, else null
     * @return the reader end
     * @throws IOException if the file cannot be opened (see {@link ShmChannel#open})
     */
    public static StagedChannel openReader(ChannelSpec spec, Path file, ValueCodec codec, DeviceOps ops, int reader,
                                           int device, long stream, Waker readerWaker) throws IOException {
        if (reader < 0 || reader >= spec.readers().size()) {
            throw new IllegalArgumentException("channel c" + spec.id() + " has readers 0 to " + (spec.readers().size() - 1)
                    + ", got " + reader);
        }
        Waker[] wakers = new Waker[spec.readers().size()];
        wakers[reader] = readerWaker;
        ShmChannel host = ShmChannel.open(hostSpec(spec), file, codec, wakers);
        return new StagedChannel(spec, ops, host, reader, Math.max(device, -1), stream, false);
    }

    /**
     * @param spec a {@code STAGED} channel of a plan
     * @return the bytes its host slots' file takes in the shared-memory directory
     */
    public static long fileBytes(ChannelSpec spec) {
        return ShmChannel.fileBytes(hostSpec(spec));
    }

    /** @return the host slots' file, for {@link #openReader} */
    public Path path() {
        return host.path();
    }

    @Override
    public ChannelSpec spec() {
        return spec;
    }

    @Override
    public boolean crossesProcesses() {
        return true;
    }

    /** Writer end only. */
    @Override
    public boolean isFree(long sequence) {
        return host.isFree(sequence);
    }

    /**
     * Copies a device tensor into the host slot of {@code sequence}, waits for the copy, and publishes it;
     * other values are encoded. Writer end only.
     *
     * @return false if a reader has not released {@code sequence - slots} yet (nothing is copied)
     * @throws IllegalArgumentException if the tensor is on another device than the writer's, larger than a slot or
     *                                  of more than {@value GpuSlots#MAX_RANK} dimensions, or the value is a host
     *                                  tensor; nothing is published
     * @throws IllegalStateException    at a reader end
     */
    @Override
    public boolean offer(long sequence, Object value) {
        if (reader >= 0) {
            throw new IllegalStateException("channel c" + spec.id() + ": this is reader " + reader + "'s end; only the"
                    + " writer end offers");
        }
        DeviceTensor t = GpuSlots.check(spec, value, device);
        if (t == null) {
            return host.offer(sequence, value);
        }
        GpuSlots.checkRank(spec, t);
        if (!host.isFree(sequence)) {
            return false;
        }
        int slot = (int) (sequence % slotCount);
        long[] shape = shapes[slot];
        if (!sameShape(shape, t)) {
            shape = t.shape();
            shapes[slot] = shape;
        }
        MemorySegment region = host.claimTensor(sequence, t.dtype(), shape);
        if (region == null) {
            throw new IllegalStateException("channel c" + spec.id() + ": its free host slot has no room for "
                    + t.byteSize() + " bytes");
        }
        if (t.byteSize() > 0) {
            ops.recordEvent(device, producerReady, t.stream());
            ops.waitEvent(device, stream, producerReady);
            ops.copyAsync(device, region.address(), t.pointer(), t.byteSize(), MemcpyKind.DEVICE_TO_HOST, stream);
            ops.recordEvent(device, copied, stream);
            ops.synchronizeEvent(copied);
        }
        Tensor view = hostViews[slot];
        if (view == null || view.data().address() != region.address() || view.dtype() != t.dtype()
                || view.rank() != shape.length || !sameShape(shape, view)) {
            view = Tensor.view(region, t.dtype(), shape);
            hostViews[slot] = view;
        }
        return host.offer(sequence, view);
    }

    private static boolean sameShape(long[] shape, DeviceTensor t) {
        if (shape == null || shape.length != t.rank()) {
            return false;
        }
        for (int d = 0; d < shape.length; d++) {
            if (shape[d] != t.dim(d)) {
                return false;
            }
        }
        return true;
    }

    private static boolean sameShape(long[] shape, Tensor t) {
        for (int d = 0; d < shape.length; d++) {
            if (shape[d] != t.dim(d)) {
                return false;
            }
        }
        return true;
    }

    /**
     * Reads the value of {@code sequence}: for a reader with a GPU, a device tensor in its buffer on its stream
     * (the copy is enqueued, the host does not wait); for a reader without one, the host tensor in the slot.
     * Both are borrowed until {@link #release}. Other values are decoded. This reader's end and thread only.
     *
     * @throws IllegalArgumentException if {@code reader} is not this end's reader
     * @throws IllegalStateException    for a GPU reader, if the host slot holds a tensor of more bytes than its device
     *                                  buffer holds (a host tensor the writer's process offered): nothing is copied
     */
    @Override
    public Object poll(int reader, long sequence) {
        checkReader(reader);
        Object value = host.poll(reader, sequence);
        if (device < 0 || !(value instanceof Tensor t)) {
            return value;
        }
        if (t.byteSize() > spec.slotBytes()) {
            throw new IllegalStateException("channel c" + spec.id() + " (STAGED): the host slot of sequence " + sequence
                    + " holds a " + t.dtype() + " tensor of " + t.byteSize() + " bytes, more than the "
                    + spec.slotBytes() + " bytes of reader " + reader + "'s device buffer; offer device tensors of at"
                    + " most CompileOptions.bufferBytes");
        }
        if (t.byteSize() > 0) {
            ops.copyAsync(device, buffer, t.data().address(), t.byteSize(), MemcpyKind.HOST_TO_DEVICE, stream);
            ops.recordEvent(device, copied, stream);
        }
        held = true;
        lastView = GpuSlots.view(lastView, device, buffer, stream, t);
        return lastView;
    }

    /** Waits for this reader's host-to-device copy, then gives the host slot back. This reader's thread only. */
    @Override
    public void release(int reader, long sequence) {
        checkReader(reader);
        if (held) {
            held = false;
            ops.synchronizeEvent(copied);
        }
        host.release(reader, sequence);
    }

    private void checkReader(int r) {
        if (r != reader) {
            throw new IllegalArgumentException("channel c" + spec.id() + ": this end belongs to "
                    + (reader < 0 ? "the writer" : "reader " + reader) + ", not reader " + r);
        }
    }

    @Override
    public boolean awaitPublished(int reader, long sequence, long timeoutNanos) {
        checkReader(reader);
        return host.awaitPublished(reader, sequence, timeoutNanos);
    }

    @Override
    public boolean awaitReleased(long sequence, long timeoutNanos) {
        return host.awaitReleased(sequence, timeoutNanos);
    }

    /**
     * Waits for this end's copies, unpins and unmaps the host slots (the writer end also deletes the file) and
     * frees the device buffer, events and stream this end made. Idempotent; no other call may follow or race.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException failure = null;
        if (copied != 0) {
            failure = GpuResources.run(() -> ops.synchronizeEvent(copied), null);
        }
        failure = GpuResources.free(ops, buffer, failure);
        failure = GpuResources.destroyEvent(ops, copied, failure);
        failure = GpuResources.destroyEvent(ops, producerReady, failure);
        if (reader < 0) {
            failure = GpuResources.destroyStream(ops, stream, failure);
        }
        if (pinned != null) {
            failure = GpuResources.run(() -> ops.unpinHost(pinned), failure);
        }
        failure = GpuResources.run(host::close, failure);
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public String toString() {
        return "StagedChannel(c" + spec.id() + ", " + (reader < 0 ? "writer on gpu" + device
                : "reader " + reader + (device < 0 ? " on the host" : " on gpu" + device)) + ", " + host.path() + ")";
    }
}
