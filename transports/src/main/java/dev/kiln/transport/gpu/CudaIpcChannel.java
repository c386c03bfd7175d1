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
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.locks.LockSupport;

/**
 * A {@link Channel} for {@code Transport.CUDA_IPC}: the writer and its readers are JVMs of one host, each
 * participant on a GPU. Each reader end ({@link #openReader}, in the reader's process) allocates its
 * receive slots on its own device, {@code spec.slots()} of {@code spec.slotBytes()}, with an interprocess
 * "ready" and "released" event per slot, and exports their CUDA IPC handles once, in a small file next to
 * the channel's shared-memory file ({@code <channel file>.r<reader>.ipc}, written whole then renamed). The
 * writer end ({@link #createWriter}) opens each reader's handles the first time it offers after the file
 * appears; until every reader's has, {@link #offer} returns false, as for a full channel, and
 * {@link #awaitReleased} waits for them too. A reader in the writer's own process is used directly, since
 * CUDA refuses to open a handle in the process that exported it.
 *
 * <p>Per value, a small {@link ShmChannel} carries the sequence and, for a device tensor, a header with its
 * element type and shape (or an error record, or null, encoded as on any shared-memory channel). The bytes
 * go peer to peer: {@link #offer} has the writer's copy stream wait for an event recorded on the tensor's
 * stream and for each reader's "released" event of the slot, copies into each reader's slot, records the
 * reader's "ready" event, makes the tensor's stream wait for the copies (so that the writer may reuse the
 * tensor on its stream), and then publishes the header. {@link #poll} makes the reader's stream wait for
 * "ready" and returns a view of its slot on its stream, borrowed until {@link #release}, which records
 * "released" on that stream. The host waits for no GPU work. A tensor larger than a slot is refused with an
 * {@link IllegalArgumentException} naming the channel, the size and {@code CompileOptions.bufferBytes}.
 *
 * <p>Threads as in {@link Channel}. <b>Not yet verified on a GPU</b> (IPC events recorded in one process and
 * waited on in another are the CUDA-documented use, but untested here); tested with two simulated processes
 * of {@link SimulatedDeviceOps}.
 */
public final class CudaIpcChannel implements Channel {

    private static final long MAGIC = 0x3143504943504749L; // "IGPCIPC1"
    /** Bytes before the per-slot records: magic, pid, device, slots, stride, slot bytes, memory handle, raw pointer. */
    private static final int HEAD = 8 + 8 + 4 + 4 + 8 + 8 + 64 + 8;
    private static final int PER_SLOT = 64 + 64 + 8 + 8;
    /** Initial bytes of a metadata slot: a header of any rank, or a short error record (the slots grow for longer). */
    private static final long META_SLOT_BYTES = 1024;
    private static final long ATTACH_POLL_NANOS = 1_000_000;

    private final ChannelSpec spec;
    private final DeviceOps ops;
    private final ShmChannel meta;
    /** This end's reader index, or -1 at the writer end. */
    private final int reader;
    private final int device;
    private final int slotCount;
    private final long stride;

    // writer end
    private final GpuSlots.Headers headers;
    private final Peer[] peers;
    private final long copyStream;
    private final long producerReady;

    // reader end
    private final long stream;
    private final long slots;
    private final long[] ready;
    private final long[] released;
    private final DeviceTensor[] views;
    private final boolean[] held;
    private final Path handleFile;

    private boolean closed;

    /** A reader's slots and events as the writer sees them. */
    private record Peer(long slots, long[] ready, long[] released, boolean opened) {
    }

    private CudaIpcChannel(ChannelSpec spec, DeviceOps ops, ShmChannel meta, int reader, int device, long stream) {
        this.spec = spec;
        this.ops = ops;
        this.meta = meta;
        this.reader = reader;
        this.device = device;
        this.slotCount = spec.slots();
        this.stride = GpuSlots.stride(spec.slotBytes());
        boolean writer = reader < 0;
        this.headers = writer ? new GpuSlots.Headers(slotCount) : null;
        this.peers = writer ? new Peer[spec.readers().size()] : null;
        this.ready = writer ? null : new long[slotCount];
        this.released = writer ? null : new long[slotCount];
        this.views = writer ? null : new DeviceTensor[slotCount];
        this.held = writer ? null : new boolean[slotCount];
        this.handleFile = writer ? null : handleFile(meta.path(), reader);
        this.stream = writer ? 0 : stream;
        long cs = 0;
        long pr = 0;
        long base = 0;
        try {
            if (writer) {
                cs = ops.createStream(device);
                pr = ops.createEvent(device, false);
            } else {
                base = ops.allocate(device, stride * slotCount);
                for (int s = 0; s < slotCount; s++) {
                    ready[s] = ops.createEvent(device, true);
                    released[s] = ops.createEvent(device, true);
                }
            }
        } catch (RuntimeException e) {
            RuntimeException f = GpuResources.destroyStream(ops, cs, e);
            f = GpuResources.destroyEvent(ops, pr, f);
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
        this.copyStream = cs;
        this.producerReady = pr;
        this.slots = base;
    }

    private static ChannelSpec metaSpec(ChannelSpec spec) {
        return new ChannelSpec(spec.id(), spec.node(), spec.writer(), spec.readers(), spec.slots(), META_SLOT_BYTES,
                spec.transport(), spec.reason());
    }

    private static Path handleFile(Path metaFile, int reader) {
        String name = metaFile.getFileName().toString();
        return metaFile.resolveSibling(name.substring(0, name.length() - ".shm".length()) + ".r" + reader + ".ipc");
    }

    /**
     * Creates the channel's shared-memory file and becomes its writer; readers attach later.
     *
     * @param spec         the plan's channel ({@code CUDA_IPC})
     * @param directory    where the files go, usually {@link ShmChannel#DEFAULT_DIRECTORY}
     * @param name         unique among this process's channels in {@code directory} (see {@link ShmChannel#create})
     * @param codec        encodes values other than device tensors; readers need the same registered classes
     * @param ops          the device operations ({@link CudaDeviceOps} on a GPU)
     * @param device       the writer's GPU (its tensors' device)
     * @param writerWaker  the writer thread's waker, or null
     * @param readerWakers per reader index, the waker of a reader in this process, else null
     * @return the writer end; readers open {@link #path()}
     * @throws IOException if the file cannot be created (see {@link ShmChannel#create})
     */
    public static CudaIpcChannel createWriter(ChannelSpec spec, Path directory, String name, ValueCodec codec,
                                              DeviceOps ops, int device, Waker writerWaker, Waker[] readerWakers)
            throws IOException {
        ShmChannel meta = ShmChannel.create(metaSpec(spec), directory, name, codec, true, writerWaker, readerWakers);
        try {
            return new CudaIpcChannel(spec, ops, meta, -1, device, 0);
        } catch (RuntimeException e) {
            meta.close();
            throw e;
        }
    }

    /**
     * Opens the channel for one reader: allocates its slots and events on {@code device} and exports their
     * handles for the writer.
     *
     * @param spec        the plan's channel ({@code CUDA_IPC})
     * @param file        the writer end's {@link #path()}
     * @param codec       decodes values other than device tensors
     * @param ops         the device operations ({@link CudaDeviceOps} on a GPU)
     * @param reader      the reader index in {@code spec.readers()}
     * @param device      the reader's GPU
     * @param stream      the stream the reader's work runs on (0: the default stream)
     * @param readerWaker the reader's waker if the writer runs in this process, else null
     * @return the reader end
     * @throws IOException if the channel's file cannot be opened or the handle file cannot be written
     */
    public static CudaIpcChannel openReader(ChannelSpec spec, Path file, ValueCodec codec, DeviceOps ops, int reader,
                                            int device, long stream, Waker readerWaker) throws IOException {
        if (reader < 0 || reader >= spec.readers().size()) {
            throw new IllegalArgumentException("channel c" + spec.id() + " has readers 0 to " + (spec.readers().size() - 1)
                    + ", got " + reader);
        }
        Waker[] wakers = new Waker[spec.readers().size()];
        wakers[reader] = readerWaker;
        ShmChannel meta = ShmChannel.open(metaSpec(spec), file, codec, wakers);
        CudaIpcChannel ch;
        try {
            ch = new CudaIpcChannel(spec, ops, meta, reader, device, stream);
        } catch (RuntimeException e) {
            meta.close();
            throw e;
        }
        try {
            ch.exportHandles();
        } catch (IOException | RuntimeException e) {
            try {
                ch.close();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        return ch;
    }

    private void exportHandles() throws IOException {
        byte[] bytes = new byte[HEAD + PER_SLOT * slotCount];
        MemorySegment m = MemorySegment.ofArray(bytes);
        m.set(ValueLayout.JAVA_LONG_UNALIGNED, 0, MAGIC);
        m.set(ValueLayout.JAVA_LONG_UNALIGNED, 8, ops.processId());
        m.set(ValueLayout.JAVA_INT_UNALIGNED, 16, device);
        m.set(ValueLayout.JAVA_INT_UNALIGNED, 20, slotCount);
        m.set(ValueLayout.JAVA_LONG_UNALIGNED, 24, stride);
        m.set(ValueLayout.JAVA_LONG_UNALIGNED, 32, spec.slotBytes());
        MemorySegment.copy(MemorySegment.ofArray(ops.exportMemory(slots)), 0, m, 40, 64);
        m.set(ValueLayout.JAVA_LONG_UNALIGNED, 104, slots);
        for (int s = 0; s < slotCount; s++) {
            long at = HEAD + (long) PER_SLOT * s;
            MemorySegment.copy(MemorySegment.ofArray(ops.exportEvent(ready[s])), 0, m, at, 64);
            MemorySegment.copy(MemorySegment.ofArray(ops.exportEvent(released[s])), 0, m, at + 64, 64);
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, at + 128, ready[s]);
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, at + 136, released[s]);
        }
        Path tmp = handleFile.resolveSibling(handleFile.getFileName() + ".tmp");
        Files.write(tmp, bytes);
        Files.move(tmp, handleFile, StandardCopyOption.ATOMIC_MOVE);
    }

    /** @return whether every reader's handles are open; opens those whose file has appeared */
    private boolean attachAll() {
        boolean all = true;
        for (int r = 0; r < peers.length; r++) {
            if (peers[r] == null) {
                peers[r] = attach(r);
                all &= peers[r] != null;
            }
        }
        return all;
    }

    private Peer attach(int r) {
        byte[] bytes;
        Path file = handleFile(meta.path(), r);
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            throw new UncheckedIOException("channel c" + spec.id() + ": cannot read reader " + r + "'s handles", e);
        }
        MemorySegment m = MemorySegment.ofArray(bytes);
        if (bytes.length != HEAD + PER_SLOT * slotCount || m.get(ValueLayout.JAVA_LONG_UNALIGNED, 0) != MAGIC
                || m.get(ValueLayout.JAVA_INT_UNALIGNED, 20) != slotCount
                || m.get(ValueLayout.JAVA_LONG_UNALIGNED, 24) != stride
                || m.get(ValueLayout.JAVA_LONG_UNALIGNED, 32) != spec.slotBytes()) {
            throw new IllegalStateException("channel c" + spec.id() + ": " + file + " does not hold reader " + r
                    + "'s handles for " + slotCount + " slots of " + spec.slotBytes() + " bytes");
        }
        boolean remote = m.get(ValueLayout.JAVA_LONG_UNALIGNED, 8) != ops.processId();
        long[] readyEvents = new long[slotCount];
        long[] releasedEvents = new long[slotCount];
        long base = remote ? ops.openMemory(m.asSlice(40, 64).toArray(ValueLayout.JAVA_BYTE))
                : m.get(ValueLayout.JAVA_LONG_UNALIGNED, 104);
        for (int s = 0; s < slotCount; s++) {
            long at = HEAD + (long) PER_SLOT * s;
            readyEvents[s] = remote ? ops.openEvent(m.asSlice(at, 64).toArray(ValueLayout.JAVA_BYTE))
                    : m.get(ValueLayout.JAVA_LONG_UNALIGNED, at + 128);
            releasedEvents[s] = remote ? ops.openEvent(m.asSlice(at + 64, 64).toArray(ValueLayout.JAVA_BYTE))
                    : m.get(ValueLayout.JAVA_LONG_UNALIGNED, at + 136);
        }
        return new Peer(base, readyEvents, releasedEvents, remote);
    }

    /** @return the channel's shared-memory file, for {@link #openReader} */
    public Path path() {
        return meta.path();
    }

    @Override
    public ChannelSpec spec() {
        return spec;
    }

    @Override
    public boolean crossesProcesses() {
        return true;
    }

    /**
     * Copies a device tensor into every reader's slot of {@code sequence} and publishes its header; other
     * values are encoded. Writer end only.
     *
     * @return false while some reader has not attached, or has not released {@code sequence - slots}
     * @throws IllegalArgumentException if the tensor is larger than a slot or has more than
     *                                  {@value GpuSlots#MAX_RANK} dimensions, or the value is a host tensor;
     *                                  nothing is published
     * @throws IllegalStateException    at a reader end
     */
    @Override
    public boolean offer(long sequence, Object value) {
        if (reader >= 0) {
            throw new IllegalStateException("channel c" + spec.id() + ": this is reader " + reader + "'s end; only the"
                    + " writer end offers");
        }
        DeviceTensor t = GpuSlots.check(spec, value);
        if (!attachAll()) {
            return false;
        }
        if (t == null) {
            return meta.offer(sequence, value);
        }
        if (!meta.isFree(sequence)) {
            return false;
        }
        int slot = (int) (sequence % slotCount);
        Tensor header = headers.encode(spec, slot, t);
        if (t.byteSize() > 0) {
            long offset = slot * stride;
            ops.recordEvent(producerReady, t.stream());
            ops.waitEvent(copyStream, producerReady);
            for (Peer p : peers) {
                ops.waitEvent(copyStream, p.released[slot]);
                ops.copyAsync(p.slots + offset, t.pointer(), t.byteSize(), MemcpyKind.DEVICE_TO_DEVICE, copyStream);
                ops.recordEvent(p.ready[slot], copyStream);
            }
            ops.waitEvent(t.stream(), peers[peers.length - 1].ready[slot]);
        }
        return meta.offer(sequence, header);
    }

    /**
     * Reads the value of {@code sequence}: a device tensor comes back as a view of this reader's slot on its
     * stream, which waits for the writer's copy; borrowed until {@link #release}. This reader's end only.
     *
     * @throws IllegalArgumentException if {@code reader} is not this end's reader
     */
    @Override
    public Object poll(int reader, long sequence) {
        checkReader(reader);
        Object value = meta.poll(reader, sequence);
        if (!GpuSlots.isHeader(value)) {
            return value;
        }
        Tensor header = (Tensor) value;
        int slot = (int) (sequence % slotCount);
        ops.waitEvent(stream, ready[slot]);
        held[slot] = true;
        DeviceTensor view = GpuSlots.fromHeader(views[slot], device, slots + slot * stride, stream, header);
        views[slot] = view;
        return view;
    }

    /** Records "released" for the slot on this reader's stream, then gives the slot back. */
    @Override
    public void release(int reader, long sequence) {
        checkReader(reader);
        int slot = (int) (sequence % slotCount);
        if (held[slot]) {
            held[slot] = false;
            ops.recordEvent(released[slot], stream);
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
    public boolean awaitPublished(int reader, long sequence, long timeoutNanos) {
        checkReader(reader);
        return meta.awaitPublished(reader, sequence, timeoutNanos);
    }

    /** Waits until every reader has attached and released {@code sequence - slots}, or the timeout. */
    @Override
    public boolean awaitReleased(long sequence, long timeoutNanos) {
        long deadline = System.nanoTime() + timeoutNanos;
        while (!attachAll()) {
            long left = deadline - System.nanoTime();
            if (left <= 0 || Thread.currentThread().isInterrupted()) {
                return false;
            }
            LockSupport.parkNanos(Math.min(left, ATTACH_POLL_NANOS));
        }
        return meta.awaitReleased(sequence, Math.max(0, deadline - System.nanoTime()));
    }

    /**
     * Writer end: waits for its copies, closes the readers' opened handles, frees its stream and event and
     * deletes the channel's file. Reader end: deletes its handle file and frees its slots and events. Views read
     * from a reader end must not be used afterwards. Idempotent; no other call may follow or race.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException failure = null;
        if (reader < 0) {
            failure = GpuResources.run(() -> {
                ops.recordEvent(producerReady, copyStream);
                ops.synchronizeEvent(producerReady);
            }, null);
            for (Peer p : peers) {
                if (p != null && p.opened) {
                    failure = GpuResources.run(() -> ops.closeMemory(p.slots), failure);
                    for (int s = 0; s < slotCount; s++) {
                        failure = GpuResources.destroyEvent(ops, p.ready[s], failure);
                        failure = GpuResources.destroyEvent(ops, p.released[s], failure);
                    }
                }
            }
            failure = GpuResources.destroyEvent(ops, producerReady, failure);
            failure = GpuResources.destroyStream(ops, copyStream, failure);
            headers.close();
        } else {
            failure = GpuResources.run(() -> {
                try {
                    Files.deleteIfExists(handleFile);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }, null);
            for (int s = 0; s < slotCount; s++) {
                failure = GpuResources.destroyEvent(ops, ready[s], failure);
                failure = GpuResources.destroyEvent(ops, released[s], failure);
            }
            failure = GpuResources.free(ops, slots, failure);
        }
        failure = GpuResources.run(meta::close, failure);
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public String toString() {
        return "CudaIpcChannel(c" + spec.id() + ", " + (reader < 0 ? "writer" : "reader " + reader) + " on gpu" + device
                + ", " + meta.path() + ")";
    }
}
