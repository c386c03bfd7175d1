package dev.kiln.transport.gpu;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.Channel;
import dev.kiln.transport.PrivateFiles;
import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.UserPrincipal;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A {@link Channel} for {@code Transport.CUDA_IPC}: the writer and its readers are JVMs of one host, each
 * participant on a GPU. The bytes go device to device through CUDA IPC; a small {@link ShmChannel} (the
 * channel's file {@code <name>.shm}) carries, per value, the sequence and a header with the tensor's element
 * type and shape (or an error record, or null, encoded as on any shared-memory channel).
 *
 * <p><b>Handles and events.</b> Every event is recorded only by the process that created it, on a stream of its
 * own device (CUDA refuses anything else); waits may cross devices. The writer end ({@link #createWriter}, phase
 * one) creates one interprocess "ready" event per slot on its device and writes their IPC handles to
 * {@code <name>.w.ipc}. Each reader end ({@link #openReader}, phase two, once that file exists) allocates its
 * receive slots on its own device ({@code spec.slots()} of {@code spec.slotBytes()}) with one interprocess
 * "released" event per slot, writes their handles to {@code <name>.r<reader>.ipc}, and opens the writer's ready
 * events as events of its device. The writer opens each reader's slots and released events, as memory and events
 * of its own device, the first time it offers after the reader's file appears; until every reader's has,
 * {@link #offer} returns false, as for a full channel. A reader in the writer's own process is used directly,
 * since CUDA refuses to open a handle in the process that exported it: an end takes such an end's events and memory
 * from what this JVM exported, never from a file. Each file is written whole (mode 0600), then renamed; everything
 * read from one is checked and bounded.
 *
 * <p><b>Per value.</b> {@link #offer} has the writer's copy stream wait for an event recorded on the tensor's stream
 * and for each reader's released event of the slot, copies into each reader's slot, records the slot's ready
 * event, makes the tensor's stream wait for it (so that the writer may reuse the tensor on its stream), and then
 * publishes the header. {@link #poll} makes the reader's stream wait for ready and returns a view of its slot on its
 * stream, borrowed until {@link #release}, which records released on that stream. The host waits for no GPU work.
 * A tensor larger than a slot, or on another device than the writer's, is refused with an
 * {@link IllegalArgumentException}.
 *
 * <p><b>Closing</b>, in an order both ends keep: the writer end waits for its copies, closes the readers' memory and
 * events it opened, and then deletes {@code <name>.w.ipc}; a reader end frees its slots only once that file is gone
 * (or the writer's process is), so no copy can land in freed memory. A reader whose writer does not close within
 * {@value #CLOSE_WAIT_SECONDS} s leaves its slots allocated and says so.
 *
 * <p>Threads as in {@link Channel}. <b>Not yet verified on a GPU</b>; tested with simulated processes of
 * {@link SimulatedDeviceOps}, which enforce CUDA's rules on events, devices and handles.
 */
public final class CudaIpcChannel implements Channel {

    private static final long WRITER_MAGIC = 0x3157504943504749L; // "IGPCIPW1"
    private static final long READER_MAGIC = 0x3152504943504749L; // "IGPCIPR1"
    /**
     * Writer file: magic, pid, device, slots; then per slot the ready event's handle and raw id (the raw ids are
     * informative: an end of the writer's process takes them from {@link #EXPORTED}).
     */
    private static final int WRITER_HEAD = 8 + 8 + 4 + 4;
    private static final int WRITER_PER_SLOT = 64 + 8;
    /**
     * Reader file: magic, pid, device, slots, stride, slot bytes, memory handle, raw pointer; then per slot the released
     * event's handle and raw id (the raw pointer and ids are informative, as in the writer file).
     */
    private static final int READER_HEAD = 8 + 8 + 4 + 4 + 8 + 8 + 64 + 8;
    private static final int READER_PER_SLOT = 64 + 8;
    /** Initial bytes of a metadata slot: a header of any rank, or a short error record (the slots grow for longer). */
    private static final long META_SLOT_BYTES = 1024;
    private static final long ATTACH_POLL_NANOS = 1_000_000;
    private static final int CLOSE_WAIT_SECONDS = 30;
    /** A handle file, or one being written: {@code kiln-<writer pid>-<name>.w.ipc}, {@code .r<n>.ipc}, {@code .tmp}. */
    private static final Pattern HANDLE_FILE = Pattern.compile("kiln-(\\d{1,18})-[A-Za-z0-9_.-]+\\.ipc(\\.tmp)?");

    /**
     * What the ends of this JVM exported, by handle file: the raw ids of events and memory, which an end of the same
     * (simulated) process uses instead of the handles, as CUDA refuses to open those there. A file only says which
     * process wrote it; the ids come from here, so what a file holds never chooses an address this process uses.
     */
    private static final Map<Path, Exported> EXPORTED = new ConcurrentHashMap<>();

    /** The raw ids one end exported: the writer's ready events, or a reader's slots and released events. */
    private record Exported(long process, long memory, long[] events) {
    }

    private final ChannelSpec spec;
    private final DeviceOps ops;
    private final ShmChannel meta;
    /** This end's reader index, or -1 at the writer end. */
    private final int reader;
    private final int device;
    private final int slotCount;
    private final long stride;
    /** Writer end: its own ready events. Reader end: the writer's, opened (or its own ids, in the same process). */
    private final long[] ready;
    /** Reader end: whether {@link #ready} holds events it opened and must destroy. */
    private final boolean readyOpened;

    // writer end
    private final GpuSlots.Headers headers;
    private final Peer[] peers;
    private final long copyStream;
    private final long producerReady;

    // reader end
    private final long stream;
    private final long slots;
    private final long[] released;
    private final DeviceTensor[] views;
    private final boolean[] held;
    private final long writerProcess;

    private boolean closed;

    /** A reader's slots and released events as the writer sees them. */
    private record Peer(long slots, long[] released, boolean opened) {
    }

    /** Writer end. */
    private CudaIpcChannel(ChannelSpec spec, DeviceOps ops, ShmChannel meta, int device) {
        this.spec = spec;
        this.ops = ops;
        this.meta = meta;
        this.reader = -1;
        this.device = device;
        this.slotCount = spec.slots();
        this.stride = GpuSlots.stride(spec.slotBytes());
        this.headers = new GpuSlots.Headers(slotCount);
        this.peers = new Peer[spec.readers().size()];
        this.ready = new long[slotCount];
        this.readyOpened = false;
        this.stream = 0;
        this.slots = 0;
        this.released = null;
        this.views = null;
        this.held = null;
        this.writerProcess = ops.processId();
        long cs = 0;
        long pr = 0;
        try {
            cs = ops.createStream(device);
            pr = ops.createEvent(device, false);
            for (int s = 0; s < slotCount; s++) {
                ready[s] = ops.createEvent(device, true);
            }
        } catch (RuntimeException e) {
            RuntimeException f = GpuResources.destroyStream(ops, cs, e);
            f = GpuResources.destroyEvent(ops, pr, f);
            for (long r : ready) {
                f = GpuResources.destroyEvent(ops, r, f);
            }
            headers.close();
            throw f;
        }
        this.copyStream = cs;
        this.producerReady = pr;
    }

    /** Reader end: the writer's ready events already opened (or borrowed) by the caller. */
    private CudaIpcChannel(ChannelSpec spec, DeviceOps ops, ShmChannel meta, int reader, int device, long stream,
                           long[] ready, boolean readyOpened, long writerProcess) {
        this.spec = spec;
        this.ops = ops;
        this.meta = meta;
        this.reader = reader;
        this.device = device;
        this.slotCount = spec.slots();
        this.stride = GpuSlots.stride(spec.slotBytes());
        this.ready = ready;
        this.readyOpened = readyOpened;
        this.headers = null;
        this.peers = null;
        this.copyStream = 0;
        this.producerReady = 0;
        this.stream = stream;
        this.released = new long[slotCount];
        this.views = new DeviceTensor[slotCount];
        this.held = new boolean[slotCount];
        this.writerProcess = writerProcess;
        long base = 0;
        try {
            base = ops.allocate(device, stride * slotCount);
            for (int s = 0; s < slotCount; s++) {
                released[s] = ops.createEvent(device, true);
            }
        } catch (RuntimeException e) {
            RuntimeException f = GpuResources.free(ops, base, e);
            for (long r : released) {
                f = GpuResources.destroyEvent(ops, r, f);
            }
            throw f;
        }
        this.slots = base;
    }

    private static ChannelSpec metaSpec(ChannelSpec spec) {
        return new ChannelSpec(spec.id(), spec.node(), spec.writer(), spec.readers(), spec.slots(), META_SLOT_BYTES,
                spec.transport(), spec.reason());
    }

    private static Path sibling(Path metaFile, String suffix) {
        String name = metaFile.getFileName().toString();
        return metaFile.resolveSibling(name.substring(0, name.length() - ".shm".length()) + suffix);
    }

    private static Path writerFile(Path metaFile) {
        return sibling(metaFile, ".w.ipc");
    }

    private static Path readerFile(Path metaFile, int reader) {
        return sibling(metaFile, ".r" + reader + ".ipc");
    }

    /**
     * Creates the channel's files and becomes its writer (phase one); readers open it in phase two.
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
     * @throws IOException if a file cannot be created (see {@link ShmChannel#create})
     */
    public static CudaIpcChannel createWriter(ChannelSpec spec, Path directory, String name, ValueCodec codec,
                                              DeviceOps ops, int device, Waker writerWaker, Waker[] readerWakers)
            throws IOException {
        ShmChannel meta = ShmChannel.create(metaSpec(spec), directory, name, codec, true, writerWaker, readerWakers);
        CudaIpcChannel w;
        try {
            w = new CudaIpcChannel(spec, ops, meta, device);
        } catch (RuntimeException e) {
            meta.close();
            throw e;
        }
        try {
            w.exportReady();
        } catch (IOException | RuntimeException e) {
            try {
                w.close();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        return w;
    }

    private void exportReady() throws IOException {
        byte[] bytes = new byte[WRITER_HEAD + WRITER_PER_SLOT * slotCount];
        MemorySegment m = MemorySegment.ofArray(bytes);
        m.set(ValueLayout.JAVA_LONG_UNALIGNED, 0, WRITER_MAGIC);
        m.set(ValueLayout.JAVA_LONG_UNALIGNED, 8, ops.processId());
        m.set(ValueLayout.JAVA_INT_UNALIGNED, 16, device);
        m.set(ValueLayout.JAVA_INT_UNALIGNED, 20, slotCount);
        for (int s = 0; s < slotCount; s++) {
            long at = WRITER_HEAD + (long) WRITER_PER_SLOT * s;
            MemorySegment.copy(MemorySegment.ofArray(ops.exportEvent(ready[s])), 0, m, at, 64);
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, at + 64, ready[s]);
        }
        EXPORTED.put(key(writerFile(meta.path())), new Exported(ops.processId(), 0, ready.clone()));
        writeWhole(writerFile(meta.path()), bytes);
    }

    private static Path key(Path file) {
        return file.toAbsolutePath().normalize();
    }

    /**
     * Writes a handle file aside, mode 0600 and as a new file (never through a link, or into a file someone else left
     * there: the handles open this process's memory and events to whoever reads them), then renames it in place.
     */
    private static void writeWhole(Path file, byte[] bytes) throws IOException {
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        Files.deleteIfExists(tmp);
        try (SeekableByteChannel out = Files.newByteChannel(tmp, Set.of(StandardOpenOption.CREATE_NEW,
                StandardOpenOption.WRITE), PrivateFiles.FILE)) {
            ByteBuffer b = ByteBuffer.wrap(bytes);
            while (b.hasRemaining()) {
                out.write(b);
            }
        }
        Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE);
    }

    /**
     * Reads a handle file another process wrote, without following a link and no further than one byte past
     * {@code expected}, so that neither a large file nor a device behind the name fills the heap. The file must
     * belong to the owner of the channel's file, which only that user's processes can open (mode 0600): in a
     * directory such as {@code /dev/shm} anyone may create a file of the name first, and its handles would have the
     * writer copy values into memory of that user's choosing.
     *
     * @param channelFile the channel's file ({@link #path()})
     * @return the bytes, which the caller checks: their length differs from {@code expected} when the file does
     * @throws NoSuchFileException if the file does not exist (yet)
     * @throws IOException         if it is no regular file, belongs to another user, or cannot be read
     */
    private static byte[] readHandles(Path file, long expected, Path channelFile) throws IOException {
        if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) {
            if (Files.notExists(file, LinkOption.NOFOLLOW_LINKS)) {
                throw new NoSuchFileException(file.toString());
            }
            throw new IOException(file + " is not a regular file");
        }
        // A file of the channel's owner cannot be replaced by anyone else in a sticky directory: checked, it stays so.
        UserPrincipal owner = Files.getOwner(file, LinkOption.NOFOLLOW_LINKS);
        UserPrincipal channelOwner = Files.getOwner(channelFile, LinkOption.NOFOLLOW_LINKS);
        if (!owner.equals(channelOwner)) {
            throw new IOException(file + " belongs to " + owner.getName() + ", not to " + channelOwner.getName()
                    + ", who owns the channel's file " + channelFile
                    + "; remove it if no channel of that user uses it");
        }
        try (InputStream in = Files.newInputStream(file, LinkOption.NOFOLLOW_LINKS)) {
            return in.readNBytes((int) Math.min(expected + 1, Integer.MAX_VALUE - 8));
        }
    }

    /**
     * Opens the channel for one reader (phase two): opens the writer's ready events on {@code device}, allocates
     * its slots and released events there, and exports their handles for the writer.
     *
     * @param spec        the plan's channel ({@code CUDA_IPC})
     * @param file        the writer end's {@link #path()}
     * @param codec       decodes values other than device tensors
     * @param ops         the device operations ({@link CudaDeviceOps} on a GPU)
     * @param reader      the reader index in {@code spec.readers()}
     * @param device      the reader's GPU
     * @param stream      the stream the reader's work runs on, on {@code device} (0: the device's default stream)
     * @param readerWaker the reader's waker if the writer runs in this process, else null
     * @return the reader end
     * @throws IOException if the channel's files cannot be read (or the writer's handle file is no regular file of the
     *                     channel file's owner), or the handle file cannot be written
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
        long[] ready = new long[spec.slots()];
        boolean opened = false;
        long writer;
        CudaIpcChannel ch;
        try {
            byte[] bytes = readHandles(writerFile(file), WRITER_HEAD + (long) WRITER_PER_SLOT * spec.slots(),
                    meta.path());
            MemorySegment m = MemorySegment.ofArray(bytes);
            if (bytes.length != WRITER_HEAD + (long) WRITER_PER_SLOT * spec.slots()
                    || m.get(ValueLayout.JAVA_LONG_UNALIGNED, 0) != WRITER_MAGIC
                    || m.get(ValueLayout.JAVA_INT_UNALIGNED, 20) != spec.slots()) {
                throw new IllegalStateException("channel c" + spec.id() + ": " + writerFile(file) + " does not hold the"
                        + " writer's events for " + spec.slots() + " slots");
            }
            writer = m.get(ValueLayout.JAVA_LONG_UNALIGNED, 8);
            opened = writer != ops.processId();
            long[] own = opened ? null : ownExport(spec, ops, writerFile(file), "the writer's ready events", false,
                    ready.length);
            for (int s = 0; s < ready.length; s++) {
                long at = WRITER_HEAD + (long) WRITER_PER_SLOT * s;
                ready[s] = opened ? ops.openEvent(device, m.asSlice(at, 64).toArray(ValueLayout.JAVA_BYTE))
                        : own[s + 1];
            }
            ch = new CudaIpcChannel(spec, ops, meta, reader, device, stream, ready, opened, writer);
        } catch (IOException | RuntimeException e) {
            RuntimeException f = null;
            for (int s = 0; opened && s < ready.length; s++) {
                f = GpuResources.destroyEvent(ops, ready[s], f);
            }
            if (f != null) {
                e.addSuppressed(f);
            }
            meta.close();
            throw e;
        }
        try {
            ch.exportReleased();
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

    private void exportReleased() throws IOException {
        byte[] bytes = new byte[READER_HEAD + READER_PER_SLOT * slotCount];
        MemorySegment m = MemorySegment.ofArray(bytes);
        m.set(ValueLayout.JAVA_LONG_UNALIGNED, 0, READER_MAGIC);
        m.set(ValueLayout.JAVA_LONG_UNALIGNED, 8, ops.processId());
        m.set(ValueLayout.JAVA_INT_UNALIGNED, 16, device);
        m.set(ValueLayout.JAVA_INT_UNALIGNED, 20, slotCount);
        m.set(ValueLayout.JAVA_LONG_UNALIGNED, 24, stride);
        m.set(ValueLayout.JAVA_LONG_UNALIGNED, 32, spec.slotBytes());
        MemorySegment.copy(MemorySegment.ofArray(ops.exportMemory(slots)), 0, m, 40, 64);
        m.set(ValueLayout.JAVA_LONG_UNALIGNED, 104, slots);
        for (int s = 0; s < slotCount; s++) {
            long at = READER_HEAD + (long) READER_PER_SLOT * s;
            MemorySegment.copy(MemorySegment.ofArray(ops.exportEvent(released[s])), 0, m, at, 64);
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, at + 64, released[s]);
        }
        EXPORTED.put(key(readerFile(meta.path(), reader)), new Exported(ops.processId(), slots, released.clone()));
        writeWhole(readerFile(meta.path(), reader), bytes);
    }

    /**
     * The ids an end of this process exported through {@code file}, for a file that names this process as its writer.
     *
     * @param memory whether the end exported memory (a reader's slots) besides {@code events} events
     * @return the exported memory (0 for none), then the events
     * @throws IllegalStateException if this process exported no such ids there: the file lies about its writer
     */
    private static long[] ownExport(ChannelSpec spec, DeviceOps ops, Path file, String what, boolean memory,
                                    int events) {
        Exported e = EXPORTED.get(key(file));
        if (e == null || e.process() != ops.processId() || e.events().length != events || (e.memory() != 0) != memory) {
            throw new IllegalStateException("channel c" + spec.id() + ": " + file + " names this process ("
                    + ops.processId() + ") as its writer, but no end of this process exported " + what + " there");
        }
        long[] ids = new long[events + 1];
        ids[0] = e.memory();
        System.arraycopy(e.events(), 0, ids, 1, events);
        return ids;
    }

    /** @return whether every reader's slots are open; opens those whose file has appeared */
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
        Path file = readerFile(meta.path(), r);
        try {
            bytes = readHandles(file, READER_HEAD + (long) READER_PER_SLOT * slotCount, meta.path());
        } catch (NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            throw new UncheckedIOException("channel c" + spec.id() + ": cannot read reader " + r + "'s handles", e);
        }
        MemorySegment m = MemorySegment.ofArray(bytes);
        if (bytes.length != READER_HEAD + (long) READER_PER_SLOT * slotCount
                || m.get(ValueLayout.JAVA_LONG_UNALIGNED, 0) != READER_MAGIC
                || m.get(ValueLayout.JAVA_INT_UNALIGNED, 20) != slotCount
                || m.get(ValueLayout.JAVA_LONG_UNALIGNED, 24) != stride
                || m.get(ValueLayout.JAVA_LONG_UNALIGNED, 32) != spec.slotBytes()) {
            throw new IllegalStateException("channel c" + spec.id() + ": " + file + " does not hold reader " + r
                    + "'s handles for " + slotCount + " slots of " + spec.slotBytes() + " bytes");
        }
        boolean remote = m.get(ValueLayout.JAVA_LONG_UNALIGNED, 8) != ops.processId();
        long[] own = remote ? null : ownExport(spec, ops, file, "reader " + r + "'s slots and released events", true,
                slotCount);
        long[] releasedEvents = new long[slotCount];
        long base = 0;
        try {
            base = remote ? ops.openMemory(device, m.asSlice(40, 64).toArray(ValueLayout.JAVA_BYTE)) : own[0];
            for (int s = 0; s < slotCount; s++) {
                long at = READER_HEAD + (long) READER_PER_SLOT * s;
                releasedEvents[s] = remote ? ops.openEvent(device, m.asSlice(at, 64).toArray(ValueLayout.JAVA_BYTE))
                        : own[s + 1];
            }
        } catch (RuntimeException e) {
            if (remote) {
                RuntimeException f = null;
                for (long ev : releasedEvents) {
                    f = GpuResources.destroyEvent(ops, ev, f);
                }
                if (base != 0) {
                    long opened = base;
                    f = GpuResources.run(() -> ops.closeMemory(opened), f);
                }
                if (f != null) {
                    e.addSuppressed(f);
                }
            }
            throw e;
        }
        return new Peer(base, releasedEvents, remote);
    }

    /**
     * @param spec a {@code CUDA_IPC} channel of a plan
     * @return the bytes its files take in the shared-memory directory: the headers' channel and the handle files
     */
    public static long fileBytes(ChannelSpec spec) {
        return ShmChannel.fileBytes(metaSpec(spec)) + WRITER_HEAD + (long) WRITER_PER_SLOT * spec.slots()
                + (long) spec.readers().size() * (READER_HEAD + (long) READER_PER_SLOT * spec.slots());
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

    /** Writer end only: false until every reader has attached. */
    @Override
    public boolean isFree(long sequence) {
        return attachAll() && meta.isFree(sequence);
    }

    /**
     * Copies a device tensor into every reader's slot of {@code sequence} and publishes its header; other
     * values are encoded. Writer end only.
     *
     * @return false while some reader has not attached, or has not released {@code sequence - slots}
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
            ops.recordEvent(device, producerReady, t.stream());
            ops.waitEvent(device, copyStream, producerReady);
            for (Peer p : peers) {
                ops.waitEvent(device, copyStream, p.released[slot]);
                ops.copyAsync(device, p.slots + offset, t.pointer(), t.byteSize(), MemcpyKind.DEVICE_TO_DEVICE,
                        copyStream);
            }
            ops.recordEvent(device, ready[slot], copyStream);
            ops.waitEvent(device, t.stream(), ready[slot]);
        }
        return meta.offer(sequence, header);
    }

    /**
     * Reads the value of {@code sequence}: a device tensor comes back as a view of this reader's slot on its
     * stream, which waits for the writer's copy; borrowed until {@link #release}. This reader's end only.
     *
     * @throws IllegalArgumentException if {@code reader} is not this end's reader
     * @throws IllegalStateException    if the header is corrupt (an unknown element type, more than
     *                                  {@value GpuSlots#MAX_RANK} dimensions, a negative one) or announces more than a
     *                                  slot holds: no view reaches past the slot
     */
    @Override
    public Object poll(int reader, long sequence) {
        checkReader(reader);
        Object value = meta.poll(reader, sequence);
        if (!GpuSlots.isHeader(value)) {
            return value;
        }
        Tensor header = (Tensor) value;
        GpuSlots.checkHeader(spec, sequence, header);
        int slot = (int) (sequence % slotCount);
        ops.waitEvent(device, stream, ready[slot]);
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
     * Writer end: waits for its copies, closes the readers' memory and events it opened, frees its stream and
     * events, deletes the readers' handle files and then its own (which tells the readers it is done), and the
     * channel's file. Reader end: waits until the writer end has closed (or its process is gone, or
     * {@value #CLOSE_WAIT_SECONDS} s), then frees its slots and events and deletes its handle file. Views read from a
     * reader end must not be used afterwards. Idempotent; no other call may follow or race.
     *
     * @throws IllegalStateException if a reader's writer did not close in time; its slots are left allocated
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException failure = reader < 0 ? closeWriter() : closeReader();
        failure = GpuResources.run(meta::close, failure);
        if (failure != null) {
            throw failure;
        }
    }

    private RuntimeException closeWriter() {
        RuntimeException failure = GpuResources.run(() -> {
            ops.recordEvent(device, producerReady, copyStream);
            ops.synchronizeEvent(producerReady);
        }, null);
        for (Peer p : peers) {
            if (p != null && p.opened) {
                failure = GpuResources.run(() -> ops.closeMemory(p.slots), failure);
                for (long e : p.released) {
                    failure = GpuResources.destroyEvent(ops, e, failure);
                }
            }
        }
        for (long e : ready) {
            failure = GpuResources.destroyEvent(ops, e, failure);
        }
        failure = GpuResources.destroyEvent(ops, producerReady, failure);
        failure = GpuResources.destroyStream(ops, copyStream, failure);
        headers.close();
        for (int r = 0; r < peers.length; r++) {
            failure = delete(readerFile(meta.path(), r), failure);
        }
        EXPORTED.remove(key(writerFile(meta.path())));
        return delete(writerFile(meta.path()), failure);
    }

    private RuntimeException closeReader() {
        EXPORTED.remove(key(readerFile(meta.path(), reader)));
        RuntimeException failure = delete(readerFile(meta.path(), reader), null);
        for (int s = 0; readyOpened && s < slotCount; s++) {
            failure = GpuResources.destroyEvent(ops, ready[s], failure);
        }
        if (!awaitWriterClosed()) {
            return GpuResources.run(() -> {
                throw new IllegalStateException("channel c" + spec.id() + ": reader " + reader + " leaves its "
                        + slotCount + " slots on gpu" + device + " allocated: the writer (process " + writerProcess
                        + ") has not closed its end within " + CLOSE_WAIT_SECONDS + " s and may still copy into them");
            }, failure);
        }
        for (long e : released) {
            failure = GpuResources.destroyEvent(ops, e, failure);
        }
        return GpuResources.free(ops, slots, failure);
    }

    /** The writer's end deletes its file once it can no longer copy; a reader in the writer's process closes after it. */
    private boolean awaitWriterClosed() {
        Path w = writerFile(meta.path());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(CLOSE_WAIT_SECONDS);
        long park = 100_000;
        while (Files.exists(w) && writerProcess != ops.processId() && alive(writerProcess)) {
            if (System.nanoTime() - deadline > 0 || Thread.currentThread().isInterrupted()) {
                return false;
            }
            LockSupport.parkNanos(park);
            park = Math.min(park * 2, 10_000_000);
        }
        return true;
    }

    private static boolean alive(long process) {
        return SimMachine.alive(process);
    }

    private static RuntimeException delete(Path file, RuntimeException failure) {
        return GpuResources.run(() -> {
            try {
                Files.deleteIfExists(file);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }, failure);
    }

    /**
     * Removes the handle files ({@code kiln-<pid>-*.ipc}, and {@code *.ipc.tmp} ones a process died writing) that
     * channels of dead processes left in a directory; other users' files are left alone.
     *
     * @param directory a shared-memory directory
     * @return how many files were removed
     * @throws IOException if the directory cannot be listed or a file cannot be removed
     */
    public static int removeStale(Path directory) throws IOException {
        int removed = 0;
        try (DirectoryStream<Path> files = Files.newDirectoryStream(directory, "kiln-*.{ipc,ipc.tmp}")) {
            for (Path file : files) {
                Matcher m = HANDLE_FILE.matcher(file.getFileName().toString());
                if (m.matches() && !ProcessHandle.of(Long.parseLong(m.group(1))).map(ProcessHandle::isAlive).orElse(false)
                        && PrivateFiles.deleteOwn(file)) {
                    removed++;
                }
            }
        }
        return removed;
    }

    @Override
    public String toString() {
        return "CudaIpcChannel(c" + spec.id() + ", " + (reader < 0 ? "writer" : "reader " + reader) + " on gpu" + device
                + ", " + meta.path() + ")";
    }
}
