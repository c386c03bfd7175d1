package dev.kiln.transport.gpu;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.transport.Channel;
import dev.kiln.transport.InProcessChannel;
import dev.kiln.transport.Waker;

/**
 * A {@link Channel} for {@code Transport.GPU_SAME_DEVICE}: writer and readers are threads of one JVM
 * using one GPU. Each reader has its own receive slots on that device, {@code spec.slots()} of
 * {@code spec.slotBytes()}, allocated when the channel is made. Sequencing, back-pressure and wake-ups
 * are an {@link InProcessChannel}'s, which carries the writer's {@link DeviceTensor} (a descriptor) or any
 * other value (an error record, null) by reference.
 *
 * <p>{@link #offer} of a device tensor, all asynchronous on the GPU, nothing waits on the host:
 * the channel's copy stream waits for an event recorded on the tensor's {@link DeviceTensor#stream()}
 * and for each reader's release event of the slot (recorded on the reader's stream when it released the
 * slot's previous sequence), copies the tensor device to device into every reader's slot, records the
 * slot's copy event, and makes the tensor's stream wait for it, so that the writer's later work on its
 * stream may reuse the tensor's memory. {@link #poll} makes the reader's stream wait for the copy event
 * and returns a view of the reader's slot on the reader's stream: borrowed until {@link #release}, which
 * records the reader's release event. A tensor larger than a slot is refused with an
 * {@link IllegalArgumentException} naming the channel, its size and {@code CompileOptions.bufferBytes};
 * nothing is truncated or published.
 *
 * <p>Threads: {@link #offer} on the writer's thread, {@link #poll}/{@link #release} of reader r on r's
 * thread, as for every channel. Every device call names {@code device}. <b>Not yet verified on a GPU</b>; tested
 * with {@link SimulatedDeviceOps}.
 */
public final class SameDeviceChannel implements Channel {

    private final ChannelSpec spec;
    private final DeviceOps ops;
    private final int device;
    private final InProcessChannel sequencer;
    private final int slotCount;
    private final long stride;
    private final long[] readerStreams;
    /** Per reader, the base of its slots. */
    private final long[] slots;
    private final long copyStream;
    private final long producerReady;
    /** Per slot, recorded on the copy stream after the slot's copies. */
    private final long[] copied;
    /** Per reader and slot, recorded on the reader's stream when it releases the slot. */
    private final long[][] released;
    /** Per reader and slot: the view it read last (reader threads only). */
    private final DeviceTensor[][] views;
    /** Per reader and slot: whether the slot's value is a device tensor the reader polled (reader threads only). */
    private final boolean[][] held;
    private boolean closed;

    /**
     * Allocates every reader's receive slots on {@code device}, a copy stream and the events.
     *
     * @param spec          the plan's channel ({@code GPU_SAME_DEVICE}): slots, slot bytes, readers
     * @param ops           the device operations ({@link CudaDeviceOps} on a GPU)
     * @param device        the GPU of the writer and every reader
     * @param readerStreams per reader index, the stream its actor's work runs on, on {@code device} (0: the
     *                      device's default stream); views it reads are ordered on it
     * @param writerWaker   the writer's waker, signalled when a reader releases
     * @param readerWakers  the readers' wakers, signalled on publication
     * @throws IllegalArgumentException if the streams or wakers do not match the readers
     */
    public SameDeviceChannel(ChannelSpec spec, DeviceOps ops, int device, long[] readerStreams, Waker writerWaker,
                             Waker[] readerWakers) {
        int readers = spec.readers().size();
        if (readerStreams.length != readers) {
            throw new IllegalArgumentException("channel c" + spec.id() + " has " + readers + " readers, got "
                    + readerStreams.length + " streams");
        }
        this.sequencer = new InProcessChannel(spec, writerWaker, readerWakers);
        this.spec = spec;
        this.ops = ops;
        this.device = device;
        this.slotCount = spec.slots();
        this.stride = GpuSlots.stride(spec.slotBytes());
        this.readerStreams = readerStreams.clone();
        this.slots = new long[readers];
        this.copied = new long[slotCount];
        this.released = new long[readers][slotCount];
        this.views = new DeviceTensor[readers][slotCount];
        this.held = new boolean[readers][slotCount];
        long stream = 0;
        long ready = 0;
        try {
            for (int r = 0; r < readers; r++) {
                slots[r] = ops.allocate(device, stride * slotCount);
            }
            stream = ops.createStream(device);
            ready = ops.createEvent(device, false);
            for (int s = 0; s < slotCount; s++) {
                copied[s] = ops.createEvent(device, false);
                for (int r = 0; r < readers; r++) {
                    released[r][s] = ops.createEvent(device, false);
                }
            }
        } catch (RuntimeException e) {
            this.copyStream = stream;
            this.producerReady = ready;
            freeAll(e);
            throw e;
        }
        this.copyStream = stream;
        this.producerReady = ready;
    }

    @Override
    public ChannelSpec spec() {
        return spec;
    }

    @Override
    public boolean isFree(long sequence) {
        return sequencer.isFree(sequence);
    }

    /**
     * Copies a device tensor into every reader's slot of {@code sequence} and publishes it; other values
     * are published as they are. Writer thread only.
     *
     * @return false if a reader has not released {@code sequence - slots} yet (nothing is copied)
     * @throws IllegalArgumentException if the tensor is larger than a slot, on another device, or a host
     *                                  tensor; nothing is published
     */
    @Override
    public boolean offer(long sequence, Object value) {
        DeviceTensor t = GpuSlots.check(spec, value, device);
        if (!sequencer.isFree(sequence)) {
            return false;
        }
        if (t != null && t.byteSize() > 0) {
            int slot = (int) (sequence % slotCount);
            long offset = slot * stride;
            ops.recordEvent(device, producerReady, t.stream());
            ops.waitEvent(device, copyStream, producerReady);
            for (int r = 0; r < slots.length; r++) {
                ops.waitEvent(device, copyStream, released[r][slot]);
                ops.copyAsync(device, slots[r] + offset, t.pointer(), t.byteSize(), MemcpyKind.DEVICE_TO_DEVICE,
                        copyStream);
            }
            ops.recordEvent(device, copied[slot], copyStream);
            ops.waitEvent(device, t.stream(), copied[slot]);
        }
        return sequencer.offer(sequence, value);
    }

    /**
     * Reads the value of {@code sequence}: a device tensor comes back as a view of this reader's slot on its
     * stream, which waits for the copy (the host does not wait); borrowed until {@link #release}. Other
     * values come back as offered. Reader r's thread only.
     */
    @Override
    public Object poll(int reader, long sequence) {
        Object value = sequencer.poll(reader, sequence);
        if (value instanceof DeviceTensor t) {
            int slot = (int) (sequence % slotCount);
            long stream = readerStreams[reader];
            ops.waitEvent(device, stream, copied[slot]);
            held[reader][slot] = true;
            DeviceTensor view = GpuSlots.view(views[reader][slot], device, slots[reader] + slot * stride, stream, t);
            views[reader][slot] = view;
            return view;
        }
        return value;
    }

    /** Records this reader's release event on its stream, then gives the slot back. Reader r's thread only. */
    @Override
    public void release(int reader, long sequence) {
        int slot = (int) (sequence % slotCount);
        if (held[reader][slot]) {
            held[reader][slot] = false;
            ops.recordEvent(device, released[reader][slot], readerStreams[reader]);
        }
        sequencer.release(reader, sequence);
    }

    /**
     * Waits for the channel's copies, then frees the slots, events and stream. Views read from it must not
     * be used afterwards. Idempotent; no other call may follow or race.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException failure = null;
        try {
            ops.recordEvent(device, producerReady, copyStream);
            ops.synchronizeEvent(producerReady);
        } catch (RuntimeException e) {
            failure = e;
        }
        failure = freeAll(failure);
        sequencer.close();
        if (failure != null) {
            throw failure;
        }
    }

    private RuntimeException freeAll(RuntimeException failure) {
        for (long[] perReader : released) {
            for (long e : perReader) {
                failure = GpuResources.destroyEvent(ops, e, failure);
            }
        }
        for (long e : copied) {
            failure = GpuResources.destroyEvent(ops, e, failure);
        }
        failure = GpuResources.destroyEvent(ops, producerReady, failure);
        failure = GpuResources.destroyStream(ops, copyStream, failure);
        for (long p : slots) {
            failure = GpuResources.free(ops, p, failure);
        }
        return failure;
    }

    @Override
    public String toString() {
        return "SameDeviceChannel(c" + spec.id() + " on gpu" + device + ", " + sequencer + ")";
    }
}
