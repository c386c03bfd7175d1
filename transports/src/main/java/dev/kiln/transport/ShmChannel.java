package dev.kiln.transport;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.tensor.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Set;
import java.util.concurrent.locks.LockSupport;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A {@link Channel} whose slots live in a file (by default in {@code /dev/shm}) that the writer
 * and every reader map, so that they may run in different processes of one host. Same
 * semantics as {@link InProcessChannel}, except that values are copied into the slot by a
 * {@link ValueCodec}: {@link #poll} returns a zero-copy {@link Tensor#view} of the slot for a
 * tensor, valid until the reader releases its sequence (the same {@code Tensor} object each time a
 * slot holds a tensor of the same type and shape, so reading them allocates nothing), and a new
 * decoded object for any other value.
 *
 * <h2>File layout</h2>
 * A 4 KiB header page: magic {@code KILNSHM1}, version, slot count, reader count, generation,
 * slot capacity, first sequence; on separate 128-byte strides, the publish wake word and its
 * waiter count, and the release wake word and its waiter count. Then, each on its own 128-byte
 * stride, the published count (sequences published so far) and one released count per reader;
 * these are read with acquire loads and written with volatile stores. Then, page aligned, N
 * slots: a 64-byte header (sequence, encoded length, kind: value, error or resize) and the
 * encoded value, 64-byte aligned. The file is created with mode 0600, named
 * {@code kiln-<pid>-<name>.shm}, and removed by the writer's {@link #close()};
 * {@link #removeStale} removes files whose creating process is gone. Files are sparse: creating one
 * checks that the directory has room for all of it, since a full tmpfs answers a write to a mapped
 * page with SIGBUS.
 *
 * <h2>Growth</h2>
 * A value larger than the slot capacity makes the writer create the next generation, file
 * {@code kiln-<pid>-<name>.<g>.shm}, with the same slot count and a capacity of
 * {@code max(2 * capacity, size rounded up to 4 KiB)}; it writes the value there for sequence
 * n, then publishes a resize marker naming the new generation as sequence n in the old file.
 * A reader that polls the marker maps the new generation and reads sequence n there; releasing
 * a sequence of a newer generation also releases the marker in each older one ("moved past").
 * The writer counts a reader's releases in the oldest generation it has not moved past, so the
 * in-flight bound holds across generations, and deletes an old file once every reader has moved
 * past it. Readers in other processes unmap drained generations when they next follow a marker,
 * or at close. With growth disabled, {@link #offer} throws instead. Nothing is truncated and no
 * sequence is lost.
 *
 * <h2>Waking</h2>
 * Within one process, {@link Waker}s work as in {@link InProcessChannel}. Across processes,
 * {@link #awaitPublished} and {@link #awaitReleased} sleep on a {@link Futex}: a waiter
 * increments the waiter count, reads the wake word, re-checks its condition and sleeps while the
 * word is unchanged; a publish or release stores its counter, and only if the waiter count is
 * not zero increments the word and wakes every sleeper. All of these are sequentially
 * consistent, so either the waiter sees the new counter or the peer sees the waiter. Where
 * {@link Futex#isAvailable()} is false, the waits poll with parks of 1 us growing to 1 ms, and
 * publications and releases wake nobody; processes of one channel run the same JVM with the same
 * flags and so agree, else a futex sleeper would only wake at its timeout.
 *
 * <h2>Threads and processes</h2>
 * The process that {@link #create}s the channel is the writer; {@link #offer} and
 * {@link #awaitReleased} are for its writer thread only. Any process may {@link #open} the file
 * and poll, release and {@link #awaitPublished} for its readers, one thread per reader index (a
 * hand-over needs a happens-before edge), and so may the creating process. The hot path takes
 * no lock: a lock is taken only when a reader crosses into a new generation.
 */
public final class ShmChannel implements Channel {

    /** Where shared-memory files go unless the caller picks another directory. */
    public static final Path DEFAULT_DIRECTORY = Path.of("/dev/shm");

    /** "KILNSHM1" read as a little-endian long. */
    private static final long MAGIC = 0x314D48534E4C494BL;
    private static final int VERSION = 1;
    private static final long PAGE = 4096;
    private static final long STRIDE = 128;

    private static final long MAGIC_AT = 0;
    private static final long VERSION_AT = 8;
    private static final long SLOTS_AT = 12;
    private static final long READERS_AT = 16;
    private static final long GENERATION_AT = 20;
    private static final long CAPACITY_AT = 24;
    private static final long FIRST_SEQUENCE_AT = 32;
    private static final long PUBLISH_WORD_AT = STRIDE;
    private static final long PUBLISH_WAITERS_AT = STRIDE + 4;
    private static final long RELEASE_WORD_AT = 2 * STRIDE;
    private static final long RELEASE_WAITERS_AT = 2 * STRIDE + 4;
    /** The published count; reader r's released count is at {@code PUBLISHED_AT + (r + 1) * STRIDE}. */
    private static final long PUBLISHED_AT = PAGE;

    private static final long SLOT_HEADER = 64;
    private static final long SLOT_SEQUENCE = 0;
    private static final long SLOT_LENGTH = 8;
    private static final long SLOT_KIND = 16;
    private static final int KIND_VALUE = 1;
    private static final int KIND_ERROR = 2;
    private static final int KIND_RESIZE = 3;

    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();
    private static final VarHandle INT = ValueLayout.JAVA_INT.varHandle();

    private static final long MIN_POLL_NANOS = 1_000;
    private static final long MAX_POLL_NANOS = 1_000_000;

    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9_-]{1,100}");
    private static final Pattern FILE_NAME = Pattern.compile("kiln-(\\d{1,18})-[A-Za-z0-9_-]+(\\.\\d+)?\\.shm");

    private final ChannelSpec spec;
    private final ValueCodec codec;
    private final boolean writer;
    private final boolean growth;
    private final int slotCount;
    private final int readerCount;
    private final Path directory;
    /** {@code kiln-<pid>-<name>}: generation g lives in {@code <base>.shm} (g = 0) or {@code <base>.<g>.shm}. */
    private final String baseName;
    private final Waker writerWaker;
    private final Waker[] readerWakers;
    private final long[] releasedAt;
    private final boolean futex = Futex.isAvailable();
    /** Guards mapping and unmapping generations, and readers crossing into newer ones. */
    private final Object lock = new Object();

    /** The oldest generation this process still maps; the others follow through {@link Generation#next}. */
    private Generation oldest;
    /** Per reader: the oldest generation it has not moved past. Touched by that reader's thread only. */
    private final Generation[] readerGenerations;
    /** Per reader and slot, the tensor view it read last: handed out again while it still fits (reader threads only). */
    private final Tensor[][] views;
    /** Writer thread only: the generation it writes into. */
    private Generation writeGeneration;
    /** Writer thread only: the least released count seen, so the writer rarely scans the readers. */
    private long minReleased;
    private boolean closed;

    private ShmChannel(ChannelSpec spec, ValueCodec codec, Path directory, String baseName, boolean writer,
                       boolean growth, Waker writerWaker, Waker[] readerWakers) {
        if (spec.slots() < 1 || spec.readers().isEmpty()) {
            throw new IllegalArgumentException("channel c" + spec.id() + " needs at least one slot and one reader, has "
                    + spec.slots() + " slots and " + spec.readers().size() + " readers");
        }
        if (readerWakers.length != spec.readers().size()) {
            throw new IllegalArgumentException("channel c" + spec.id() + " has " + spec.readers().size()
                    + " readers, got " + readerWakers.length + " wakers");
        }
        this.spec = spec;
        this.codec = codec;
        this.directory = directory;
        this.baseName = baseName;
        this.writer = writer;
        this.growth = growth;
        this.slotCount = spec.slots();
        this.readerCount = readerWakers.length;
        this.writerWaker = writerWaker;
        this.readerWakers = readerWakers.clone();
        this.releasedAt = new long[readerCount];
        for (int r = 0; r < readerCount; r++) {
            releasedAt[r] = PUBLISHED_AT + (r + 1) * STRIDE;
        }
        this.readerGenerations = new Generation[readerCount];
        this.views = new Tensor[readerCount][slotCount];
    }

    /**
     * Creates the channel's file and becomes its writer.
     *
     * @param spec         the plan's channel: slot count, reader count, initial slot capacity in bytes
     * @param directory    where to create the file, usually {@link #DEFAULT_DIRECTORY}
     * @param name         unique among this process's channels in {@code directory}: 1 to 100 of
     *                     {@code [A-Za-z0-9_-]}
     * @param codec        encodes values; readers need a codec with the same registered classes
     * @param growth       whether a value larger than a slot grows the slots (else {@link #offer} throws)
     * @param writerWaker  the writer thread's waker, signalled when a reader of this process releases, or null
     * @param readerWakers per reader index, the waker of that reader if it runs in this process, else null
     * @return the channel
     * @throws IOException              if the file exists, cannot be created or mapped, or {@code directory}
     *                                  has too little usable space (the message says how much is needed)
     * @throws IllegalArgumentException if the name or the wakers do not fit the spec
     */
    public static ShmChannel create(ChannelSpec spec, Path directory, String name, ValueCodec codec, boolean growth,
                                    Waker writerWaker, Waker[] readerWakers) throws IOException {
        if (!NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("channel name '" + name + "' must be 1 to 100 of [A-Za-z0-9_-]");
        }
        String baseName = "kiln-" + ProcessHandle.current().pid() + "-" + name;
        ShmChannel ch = new ShmChannel(spec, codec, directory.toAbsolutePath(), baseName, true, growth,
                writerWaker, readerWakers);
        long capacity = Math.max(64, roundUp(spec.slotBytes(), 64));
        ch.adopt(ch.createGeneration(0, 0, capacity));
        return ch;
    }

    /**
     * Maps the file of a channel another process (or this one) created, to read it.
     *
     * @param spec         the plan's channel; slot and reader counts must match the file's
     * @param file         the writer's {@link #path()}
     * @param codec        decodes values; it must have the writer's registered classes
     * @param readerWakers per reader index, the waker of that reader if it runs in this process, else null
     * @return the channel, on which {@link #offer} throws
     * @throws IOException              if the file cannot be opened or mapped, or is not a Kiln channel
     *                                  matching {@code spec}
     * @throws IllegalArgumentException if the wakers do not fit the spec
     */
    public static ShmChannel open(ChannelSpec spec, Path file, ValueCodec codec, Waker[] readerWakers)
            throws IOException {
        Path absolute = file.toAbsolutePath();
        String fileName = absolute.getFileName().toString();
        Matcher m = FILE_NAME.matcher(fileName);
        if (!m.matches() || m.group(2) != null) {
            throw new IOException(absolute + " is not the first file of a Kiln shared-memory channel (kiln-<pid>-<name>.shm)");
        }
        ShmChannel ch = new ShmChannel(spec, codec, absolute.getParent(), fileName.substring(0, fileName.length() - 4),
                false, false, null, readerWakers);
        ch.adopt(ch.mapGeneration(0, 0));
        return ch;
    }

    private void adopt(Generation first) {
        oldest = first;
        writeGeneration = first;
        Arrays.fill(readerGenerations, first);
    }

    /**
     * Removes the Kiln channel files in {@code directory} whose creating process no longer runs;
     * files of other users are left alone (even when this process could delete them, as root can).
     *
     * @param directory a directory of shared-memory files, usually {@link #DEFAULT_DIRECTORY}
     * @return the number of files removed
     * @throws IOException if the directory cannot be listed or a file cannot be removed
     */
    public static int removeStale(Path directory) throws IOException {
        int removed = 0;
        try (DirectoryStream<Path> files = Files.newDirectoryStream(directory, "kiln-*.shm")) {
            for (Path file : files) {
                Matcher m = FILE_NAME.matcher(file.getFileName().toString());
                if (!m.matches() || ProcessHandle.of(Long.parseLong(m.group(1))).map(ProcessHandle::isAlive).orElse(false)) {
                    continue;
                }
                if (PrivateFiles.deleteOwn(file)) {
                    removed++;
                }
            }
        }
        return removed;
    }

    /**
     * The size of the file {@link #create} makes for {@code spec}, before any growth: what a
     * plan's shared-memory channels need of their directory.
     *
     * @param spec the plan's channel
     * @return bytes; {@link Long#MAX_VALUE} if the size overflows
     */
    public static long fileBytes(ChannelSpec spec) {
        return fileSize(spec.readers().size(), spec.slots(), Math.max(64, roundUp(spec.slotBytes(), 64)));
    }

    /** @return true: the writer and readers may be in different processes */
    @Override
    public boolean crossesProcesses() {
        return true;
    }

    /** @return the file of the first generation: what readers in other processes {@link #open} */
    public Path path() {
        return directory.resolve(fileName(0));
    }

    @Override
    public ChannelSpec spec() {
        return spec;
    }

    /**
     * Encodes {@code value} into the slot of {@code sequence} and publishes it; see {@link Channel#offer}.
     * Writer thread of the creating process only.
     *
     * @throws IllegalStateException    if this process opened the channel rather than created it
     * @throws IllegalArgumentException if the value cannot be encoded (see {@link ValueCodec#encode}), or is
     *                                  larger than a slot while growth is disabled; nothing is published
     * @throws UncheckedIOException     if growing the slots fails, for example for lack of space; nothing is
     *                                  published and a smaller value may still be offered
     */
    @Override
    public boolean offer(long sequence, Object value) {
        if (!writer) {
            throw new IllegalStateException("channel c" + spec.id() + " was opened by a reader; only the process that"
                    + " created it may offer");
        }
        if (!isFree(sequence)) {
            return false;
        }
        int slot = (int) (sequence % slotCount);
        int kind = value instanceof RemoteError ? KIND_ERROR : KIND_VALUE;
        Generation g = writeGeneration;
        long length = codec.encode(value, g.data[slot]);
        if (length < 0) {
            Generation grown = grow(sequence, -length);
            publish(grown, slot, sequence, codec.encode(value, grown.data[slot]), kind);
            g.next = grown;
            g.data[slot].set(ValueLayout.JAVA_INT, 0, grown.number);
            publish(g, slot, sequence, 4, KIND_RESIZE);
            writeGeneration = grown;
        } else {
            publish(g, slot, sequence, length, kind);
        }
        for (Waker w : readerWakers) {
            if (w != null) {
                w.signal();
            }
        }
        return true;
    }

    /**
     * Whether every reader has released {@code sequence - slots}, so that {@link #offer} of
     * {@code sequence} would publish; writer thread of the creating process only. Lets a writer that
     * fills the slot by other means first (a GPU copy into {@link #claimTensor} memory) check before
     * it starts.
     *
     * @param sequence the writer's next sequence
     * @return true if its slot is free
     * @throws IllegalStateException if this process opened the channel rather than created it
     */
    @Override
    public boolean isFree(long sequence) {
        if (!writer) {
            throw new IllegalStateException("channel c" + spec.id() + " was opened by a reader; it has no writer here");
        }
        long wrap = sequence - slotCount;
        if (minReleased <= wrap) {
            minReleased = scanReleased();
            return minReleased > wrap;
        }
        return true;
    }

    /**
     * The slots of the first generation in this process's mapping (headers and data, page aligned),
     * for a GPU transport to pin with {@code cudaHostRegister} once; later generations are not
     * included, so pinning callers create the channel without growth.
     *
     * @return the slot area of generation 0
     * @throws IllegalStateException after {@link #close()}
     */
    public MemorySegment slotMemory() {
        synchronized (lock) {
            Generation g = oldest;
            if (closed || g.number != 0) {
                throw new IllegalStateException("channel c" + spec.id() + ": its first generation is no longer mapped");
            }
            return g.memory.asSlice(g.slotsAt, g.memory.byteSize() - g.slotsAt);
        }
    }

    /**
     * The data region of a tensor encoded in the slot of {@code sequence}, for the writer to fill
     * in place; see {@link Channel#claimTensor}. Writer thread of the creating process only.
     */
    @Override
    public MemorySegment claimTensor(long sequence, dev.kiln.tensor.DType dtype, long[] shape) {
        if (!writer) {
            return null;
        }
        if (!isFree(sequence)) {
            return null;
        }
        long bytes = dtype.byteSize();
        for (long d : shape) {
            if (d < 0) {
                return null;
            }
            bytes = Math.multiplyHigh(bytes, d) != 0 ? Long.MAX_VALUE : bytes * d;
        }
        MemorySegment data = writeGeneration.data[(int) (sequence % slotCount)];
        long offset = ValueCodec.tensorDataOffset(shape.length);
        return bytes <= data.byteSize() - offset ? data.asSlice(offset, bytes) : null;
    }

    /**
     * Reads the value of {@code sequence}; see {@link Channel#poll}. A tensor comes back as a view of the
     * slot, valid until this reader releases the sequence (after {@link #close()} access throws
     * {@link IllegalStateException}); copy it with {@link Tensor#copyOf} to keep it. Other values are
     * decoded into new objects. May map a new generation, the only time it takes a lock.
     *
     * @throws IllegalStateException    if the slot holds another sequence (the reader polled a sequence
     *                                  it had released) or a new generation cannot be mapped
     * @throws IllegalArgumentException if the value's class is not registered with this process's codec
     */
    @Override
    public Object poll(int reader, long sequence) {
        Generation g = generationOf(reader, sequence);
        int slot = (int) (sequence % slotCount);
        while (true) {
            if ((long) LONG.getAcquire(g.memory, PUBLISHED_AT) <= sequence) {
                return NOT_READY;
            }
            long at = g.slotAt(slot);
            if (g.memory.get(ValueLayout.JAVA_INT, at + SLOT_KIND) != KIND_RESIZE) {
                long held = g.memory.get(ValueLayout.JAVA_LONG, at + SLOT_SEQUENCE);
                if (held != sequence) {
                    throw new IllegalStateException("channel c" + spec.id() + ": reader " + reader + " polled sequence "
                            + sequence + ", its slot holds " + held + "; a sequence may be polled only until released");
                }
                return decode(reader, slot, g.data[slot], g.memory.get(ValueLayout.JAVA_LONG, at + SLOT_LENGTH));
            }
            g = follow(g, slot, sequence);
        }
    }

    /**
     * Decodes a slot's value; a tensor that has the element type, shape and place of the last one this
     * reader read from the slot is that same view object, so a steady stream of like tensors allocates
     * nothing.
     */
    private Object decode(int reader, int slot, MemorySegment data, long length) {
        Tensor last = views[reader][slot];
        if (last != null && ValueCodec.stillDescribes(data, length, last)) {
            return last;
        }
        Object value = codec.decode(data.asSlice(0, length));
        views[reader][slot] = value instanceof Tensor t ? t : null;
        return value;
    }

    /**
     * Gives the slot of {@code sequence} (and every earlier one) back to the writer; see
     * {@link Channel#release}. Takes a lock only the first time this reader releases a sequence of a
     * newer generation.
     */
    @Override
    public void release(int reader, long sequence) {
        Generation g = readerGenerations[reader];
        Generation next = g.next;
        if (next != null && sequence >= next.firstSequence) {
            releaseAcross(reader, sequence);
        } else {
            setReleased(g, reader, sequence + 1);
        }
        if (writerWaker != null) {
            writerWaker.signal();
        }
    }

    /**
     * Sleeps until {@code sequence} is published for {@code reader} (so that {@link #poll} returns it),
     * the timeout expires or the thread is interrupted; wakes on a publication by a writer in any
     * process. The reader's thread only.
     *
     * @param reader       the reader index
     * @param sequence     the sequence to wait for
     * @param timeoutNanos longest wait in nanoseconds
     * @return whether {@code sequence} is published; false on timeout or interrupt (the interrupt
     *         status stays set)
     */
    @Override
    public boolean awaitPublished(int reader, long sequence, long timeoutNanos) {
        long deadline = System.nanoTime() + timeoutNanos;
        long pause = MIN_POLL_NANOS;
        while (true) {
            Generation g = generationOf(reader, sequence);
            if (published(g) > sequence) {
                return true;
            }
            long remaining = deadline - System.nanoTime();
            if (remaining <= 0 || Thread.currentThread().isInterrupted()) {
                return false;
            }
            if (futex) {
                INT.getAndAdd(g.memory, PUBLISH_WAITERS_AT, 1);
                try {
                    int word = (int) INT.getVolatile(g.memory, PUBLISH_WORD_AT);
                    if (published(g) <= sequence) {
                        Futex.await(g.publishWord, word, remaining);
                    }
                } finally {
                    INT.getAndAdd(g.memory, PUBLISH_WAITERS_AT, -1);
                }
            } else {
                LockSupport.parkNanos(Math.min(pause, remaining));
                pause = Math.min(pause << 1, MAX_POLL_NANOS);
            }
        }
    }

    /**
     * Sleeps until every reader has released {@code sequence - slots} (so that {@link #offer} of
     * {@code sequence} finds its slot free), the timeout expires or the thread is interrupted; wakes on a
     * release by a reader in any process. The writer thread only.
     *
     * @param sequence     the sequence the writer wants to offer
     * @param timeoutNanos longest wait in nanoseconds
     * @return whether the slot is free; false on timeout or interrupt (the interrupt status stays set)
     * @throws IllegalStateException if this process opened the channel rather than created it
     */
    @Override
    public boolean awaitReleased(long sequence, long timeoutNanos) {
        if (!writer) {
            throw new IllegalStateException("channel c" + spec.id() + " was opened by a reader; it has no writer here");
        }
        long wrap = sequence - slotCount;
        long deadline = System.nanoTime() + timeoutNanos;
        long pause = MIN_POLL_NANOS;
        while (true) {
            Generation g = blockingGeneration(wrap);
            if (g == null) {
                return true;
            }
            long remaining = deadline - System.nanoTime();
            if (remaining <= 0 || Thread.currentThread().isInterrupted()) {
                return false;
            }
            if (futex) {
                INT.getAndAdd(g.memory, RELEASE_WAITERS_AT, 1);
                try {
                    int word = (int) INT.getVolatile(g.memory, RELEASE_WORD_AT);
                    if (blockingGeneration(wrap) == g) {
                        Futex.await(g.releaseWord, word, remaining);
                    }
                } finally {
                    INT.getAndAdd(g.memory, RELEASE_WAITERS_AT, -1);
                }
            } else {
                LockSupport.parkNanos(Math.min(pause, remaining));
                pause = Math.min(pause << 1, MAX_POLL_NANOS);
            }
        }
    }

    /**
     * Unmaps every generation; the writer also deletes their files. Tensor views from {@link #poll}
     * throw {@link IllegalStateException} afterwards. Idempotent; no other call may follow or race.
     *
     * @throws UncheckedIOException if a file cannot be deleted (every other one still is)
     */
    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            IOException failure = null;
            for (Generation g = oldest; g != null; g = g.next) {
                g.arena.close();
                if (writer) {
                    try {
                        Files.deleteIfExists(g.path);
                    } catch (IOException e) {
                        if (failure == null) {
                            failure = e;
                        } else {
                            failure.addSuppressed(e);
                        }
                    }
                }
            }
            if (failure != null) {
                throw new UncheckedIOException("channel c" + spec.id() + ": cannot delete its files", failure);
            }
        }
    }

    @Override
    public String toString() {
        return "ShmChannel(c" + spec.id() + ", " + path() + (writer ? ", writer" : ", reader") + ")";
    }

    // ---- writer

    private void publish(Generation g, int slot, long sequence, long length, int kind) {
        long at = g.slotAt(slot);
        g.memory.set(ValueLayout.JAVA_LONG, at + SLOT_SEQUENCE, sequence);
        g.memory.set(ValueLayout.JAVA_LONG, at + SLOT_LENGTH, length);
        g.memory.set(ValueLayout.JAVA_INT, at + SLOT_KIND, kind);
        LONG.setVolatile(g.memory, PUBLISHED_AT, sequence + 1);
        if (futex && (int) INT.getVolatile(g.memory, PUBLISH_WAITERS_AT) != 0) {
            INT.getAndAdd(g.memory, PUBLISH_WORD_AT, 1);
            Futex.wake(g.publishWord, Integer.MAX_VALUE);
        }
    }

    /** @return the least count of sequences every reader released; retires drained generations */
    private long scanReleased() {
        long min = Long.MAX_VALUE;
        for (int r = 0; r < readerCount; r++) {
            min = Math.min(min, releasedCount(r));
        }
        while (oldest != writeGeneration && movedPastByAll(oldest)) {
            Generation drained = oldest;
            synchronized (lock) {
                try {
                    Files.deleteIfExists(drained.path);
                } catch (IOException e) {
                    throw new UncheckedIOException("channel c" + spec.id() + ": cannot delete drained " + drained.path, e);
                }
                oldest = drained.next;
                drained.arena.close();
            }
        }
        return min;
    }

    /** @return the released count of reader {@code r} in the oldest generation it has not moved past */
    private long releasedCount(int r) {
        Generation g = oldest;
        long released = released(g, r);
        while (g != writeGeneration && released > g.next.firstSequence) {
            g = g.next;
            released = released(g, r);
        }
        return released;
    }

    /** @return the generation whose released count keeps a reader at or below {@code wrap}, or null */
    private Generation blockingGeneration(long wrap) {
        for (int r = 0; r < readerCount; r++) {
            Generation g = oldest;
            long released = released(g, r);
            while (g != writeGeneration && released > g.next.firstSequence) {
                g = g.next;
                released = released(g, r);
            }
            if (released <= wrap) {
                return g;
            }
        }
        return null;
    }

    private boolean movedPastByAll(Generation g) {
        for (int r = 0; r < readerCount; r++) {
            if (released(g, r) <= g.next.firstSequence) {
                return false;
            }
        }
        return true;
    }

    private Generation grow(long sequence, long needed) {
        Generation g = writeGeneration;
        if (!growth) {
            throw new IllegalArgumentException("channel c" + spec.id() + ": a value of " + needed
                    + " encoded bytes does not fit its slots of " + g.capacity + " bytes and slot growth is disabled;"
                    + " raise CompileOptions.bufferBytes to at least " + needed + " or enable CompileOptions.slotGrowth");
        }
        long capacity = Math.max(2 * g.capacity, roundUp(needed, PAGE));
        try {
            return createGeneration(g.number + 1, sequence, capacity);
        } catch (IOException e) {
            throw new UncheckedIOException("channel c" + spec.id() + ": cannot grow its slots to " + capacity
                    + " bytes for a value of " + needed + " bytes: " + e.getMessage(), e);
        }
    }

    private Generation createGeneration(int number, long firstSequence, long capacity) throws IOException {
        Path path = directory.resolve(fileName(number));
        long size = fileSize(capacity);
        long usable = Files.getFileStore(directory).getUsableSpace();
        if (usable < size) {
            throw new IOException("not enough space for shared-memory channel c" + spec.id() + " in " + directory
                    + ": " + path.getFileName() + " needs " + size + " bytes (" + slotCount + " slots of " + capacity
                    + " bytes), " + usable + " are usable; lower bufferBytes or maxInflight, or put shared-memory"
                    + " files in another directory");
        }
        // CREATE_NEW fails on an existing file, which is then not ours to delete.
        FileChannel file = FileChannel.open(path, Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                StandardOpenOption.WRITE), PrivateFiles.FILE);
        Arena arena = Arena.ofShared();
        try (file) {
            MemorySegment memory = file.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
            prefault(memory, true);
            memory.set(ValueLayout.JAVA_INT, VERSION_AT, VERSION);
            memory.set(ValueLayout.JAVA_INT, SLOTS_AT, slotCount);
            memory.set(ValueLayout.JAVA_INT, READERS_AT, readerCount);
            memory.set(ValueLayout.JAVA_INT, GENERATION_AT, number);
            memory.set(ValueLayout.JAVA_LONG, CAPACITY_AT, capacity);
            memory.set(ValueLayout.JAVA_LONG, FIRST_SEQUENCE_AT, firstSequence);
            memory.set(ValueLayout.JAVA_LONG, PUBLISHED_AT, firstSequence);
            for (long at : releasedAt) {
                memory.set(ValueLayout.JAVA_LONG, at, firstSequence);
            }
            LONG.setRelease(memory, MAGIC_AT, MAGIC);
            return new Generation(number, firstSequence, capacity, path, arena, memory, slotCount, readerCount);
        } catch (IOException | RuntimeException e) {
            arena.close();
            Files.deleteIfExists(path);
            throw e;
        }
    }

    // ---- readers

    private Generation generationOf(int reader, long sequence) {
        Generation g = readerGenerations[reader];
        Generation next;
        while ((next = g.next) != null && sequence >= next.firstSequence) {
            g = next;
        }
        return g;
    }

    /** @return the generation a resize marker for {@code sequence} in {@code g} points to, mapped */
    private Generation follow(Generation g, int slot, long sequence) {
        synchronized (lock) {
            Generation next = g.next;
            if (next == null) {
                try {
                    next = mapGeneration(g.data[slot].get(ValueLayout.JAVA_INT, 0), sequence);
                } catch (IOException e) {
                    throw new IllegalStateException("channel c" + spec.id() + ": cannot map its next generation: "
                            + e.getMessage(), e);
                }
                g.next = next;
                // The writer links every generation before publishing its marker, so this is a reader process,
                // where only this locked block unmaps, and no reader touches a generation all readers moved past.
                while (oldest.next != null && movedPastByAll(oldest)) {
                    oldest.arena.close();
                    oldest = oldest.next;
                }
            }
            return next;
        }
    }

    private void releaseAcross(int reader, long sequence) {
        synchronized (lock) {
            Generation g = readerGenerations[reader];
            Generation next;
            while ((next = g.next) != null && sequence >= next.firstSequence) {
                setReleased(g, reader, next.firstSequence + 1); // past the resize marker: moved past g
                g = next;
            }
            setReleased(g, reader, sequence + 1);
            readerGenerations[reader] = g;
        }
    }

    private void setReleased(Generation g, int reader, long count) {
        LONG.setVolatile(g.memory, releasedAt[reader], count);
        if (futex && (int) INT.getVolatile(g.memory, RELEASE_WAITERS_AT) != 0) {
            INT.getAndAdd(g.memory, RELEASE_WORD_AT, 1);
            Futex.wake(g.releaseWord, Integer.MAX_VALUE);
        }
    }

    private Generation mapGeneration(int number, long firstSequence) throws IOException {
        Path path = directory.resolve(fileName(number));
        Arena arena = Arena.ofShared();
        try (FileChannel file = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            long size = file.size();
            if (size < PAGE) {
                throw new IOException(path + " is not a Kiln channel file: " + size + " bytes");
            }
            MemorySegment memory = file.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
            long magic = (long) LONG.getAcquire(memory, MAGIC_AT);
            int version = memory.get(ValueLayout.JAVA_INT, VERSION_AT);
            int slots = memory.get(ValueLayout.JAVA_INT, SLOTS_AT);
            int readers = memory.get(ValueLayout.JAVA_INT, READERS_AT);
            int generation = memory.get(ValueLayout.JAVA_INT, GENERATION_AT);
            long capacity = memory.get(ValueLayout.JAVA_LONG, CAPACITY_AT);
            long first = memory.get(ValueLayout.JAVA_LONG, FIRST_SEQUENCE_AT);
            if (magic != MAGIC || version != VERSION) {
                throw new IOException(path + " is not a Kiln channel file of version " + VERSION);
            }
            if (slots != slotCount || readers != readerCount || generation != number || first != firstSequence
                    || capacity < 64 || capacity % 64 != 0 || size != fileSize(capacity)) {
                throw new IOException(path + " does not match channel c" + spec.id() + ": it has " + slots + " slots, "
                        + readers + " readers, generation " + generation + " from sequence " + first + ", "
                        + size + " bytes; expected " + slotCount + " slots, " + readerCount + " readers, generation "
                        + number + " from sequence " + firstSequence);
            }
            prefault(memory, false);
            return new Generation(number, firstSequence, capacity, path, arena, memory, slotCount, readerCount);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /**
     * Touches every page of a new mapping, so that the page faults (and, for the writer, tmpfs
     * allocating and zeroing each page) happen here, when the graph is compiled or the slots grow,
     * and not inside the first executions: an unfaulted 64 MiB slot made the first copy into it 6
     * to 9 times slower than later ones. The space check already counted every page.
     *
     * @param memory the mapping
     * @param write  whether to write each page (the writer, on a new file) or read it (a reader)
     */
    private static void prefault(MemorySegment memory, boolean write) {
        long size = memory.byteSize();
        for (long at = 0; at < size; at += PAGE) {
            if (write) {
                memory.set(ValueLayout.JAVA_BYTE, at, (byte) 0);
            } else {
                memory.get(ValueLayout.JAVA_BYTE, at);
            }
        }
    }

    // ---- layout

    private String fileName(int generation) {
        return generation == 0 ? baseName + ".shm" : baseName + "." + generation + ".shm";
    }

    private long fileSize(long capacity) {
        return fileSize(readerCount, slotCount, capacity);
    }

    private static long fileSize(int readers, int slots, long capacity) {
        try {
            return Math.addExact(slotsAt(readers), Math.multiplyExact(slots, Math.addExact(SLOT_HEADER, capacity)));
        } catch (ArithmeticException e) {
            return Long.MAX_VALUE;
        }
    }

    private static long slotsAt(int readers) {
        return roundUp(PUBLISHED_AT + (readers + 1) * STRIDE, PAGE);
    }

    private static long roundUp(long value, long alignment) {
        return Math.multiplyExact(Math.ceilDiv(value, alignment), alignment);
    }

    private static long published(Generation g) {
        return (long) LONG.getAcquire(g.memory, PUBLISHED_AT);
    }

    private long released(Generation g, int reader) {
        return (long) LONG.getAcquire(g.memory, releasedAt[reader]);
    }

    /** One mapped file. Immutable but for {@link #next}, set once when the following generation is known. */
    private static final class Generation {
        final int number;
        final long firstSequence;
        final long capacity;
        final Path path;
        final Arena arena;
        final MemorySegment memory;
        final long slotsAt;
        final long slotStride;
        /** Per slot: its data area, {@link #capacity} bytes. */
        final MemorySegment[] data;
        final MemorySegment publishWord;
        final MemorySegment releaseWord;
        volatile Generation next;

        Generation(int number, long firstSequence, long capacity, Path path, Arena arena, MemorySegment memory,
                   int slots, int readers) {
            this.number = number;
            this.firstSequence = firstSequence;
            this.capacity = capacity;
            this.path = path;
            this.arena = arena;
            this.memory = memory;
            this.slotsAt = slotsAt(readers);
            this.slotStride = SLOT_HEADER + capacity;
            this.data = new MemorySegment[slots];
            for (int s = 0; s < slots; s++) {
                data[s] = memory.asSlice(slotAt(s) + SLOT_HEADER, capacity);
            }
            this.publishWord = memory.asSlice(PUBLISH_WORD_AT, 4);
            this.releaseWord = memory.asSlice(RELEASE_WORD_AT, 4);
        }

        long slotAt(int slot) {
            return slotsAt + slot * slotStride;
        }
    }
}
