package dev.kiln.transport.gpu;

import dev.kiln.transport.PrivateFiles;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayDeque;
import java.util.Set;

/**
 * One simulated process's table file ({@code p<id>.tab} in its machine's directory): the bytes it holds on
 * each device, and the records other processes reach through IPC handles: exported allocations (with the
 * processes that opened them) and interprocess events (with their record and completion counts). The owner
 * creates the file and hands records out; other processes map it to open handles, count themselves in as
 * importers, and record and wait on its events. Shared words are read and written with atomic operations.
 *
 * <p>Layout: a 4 KiB header (bytes held per device, 8 bytes each), then {@value #RECORDS} records of 64
 * bytes: state (0 free, 1 memory, 2 event), generation, device, then for memory the offset and size in the
 * device file and up to {@value #IMPORTERS} importing process ids, for an event its record and completion
 * counts. Thread-safe; record allocation is for the owner only.
 */
final class SimTable implements AutoCloseable {

    static final int RECORDS = 4096;
    static final int IMPORTERS = 4;
    static final int FREE = 0;
    static final int MEMORY = 1;
    static final int EVENT = 2;
    private static final int HEADER = 4096;
    private static final int RECORD = 64;
    private static final long FILE_BYTES = HEADER + (long) RECORDS * RECORD;
    private static final VarHandle INT = ValueLayout.JAVA_INT.varHandle();
    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();

    private final Arena arena;
    private final MemorySegment file;
    private final ArrayDeque<Integer> free;

    private SimTable(Arena arena, MemorySegment file, boolean owner) {
        this.arena = arena;
        this.file = file;
        this.free = owner ? new ArrayDeque<>() : null;
        if (owner) {
            for (int i = 0; i < RECORDS; i++) {
                free.add(i);
            }
        }
    }

    /**
     * Creates a process's table, mode 0600.
     *
     * @param path the file, which must not exist
     * @return the owner's table
     */
    static SimTable create(Path path) {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                StandardOpenOption.WRITE), PrivateFiles.FILE)) {
            ch.truncate(FILE_BYTES);
            return new SimTable(arena, ch.map(FileChannel.MapMode.READ_WRITE, 0, FILE_BYTES, arena), true);
        } catch (IOException e) {
            arena.close();
            throw new UncheckedIOException("cannot create the simulated process table " + path, e);
        }
    }

    /**
     * Maps another process's table.
     *
     * @param path the file
     * @return the table, or null if the file does not exist (the process is gone)
     * @throws IllegalStateException if the file is not a table
     */
    static SimTable map(Path path) {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            if (ch.size() != FILE_BYTES) {
                throw new IllegalStateException(path + " is not a simulated process table");
            }
            return new SimTable(arena, ch.map(FileChannel.MapMode.READ_WRITE, 0, FILE_BYTES, arena), false);
        } catch (NoSuchFileException e) {
            arena.close();
            return null;
        } catch (IOException | RuntimeException e) {
            arena.close();
            if (e instanceof RuntimeException r) {
                throw r;
            }
            throw new UncheckedIOException("cannot map the simulated process table " + path, (IOException) e);
        }
    }

    /** The bytes a dead process's table says it held, per device; zeros if it cannot be read. */
    static long[] usedBytes(Path path, int devices) throws IOException {
        long[] used = new long[devices];
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            if (ch.size() != FILE_BYTES) {
                return used;
            }
            ByteBuffer b = ByteBuffer.allocate(8 * devices).order(ByteOrder.nativeOrder());
            ch.read(b, 0);
            for (int d = 0; d < devices; d++) {
                used[d] = b.getLong(8 * d);
            }
        }
        return used;
    }

    /** Adds to the bytes this process holds on a device (owner only). */
    void addUsed(int device, long delta) {
        LONG.getAndAdd(file, 8L * device, delta);
    }

    /**
     * Hands out a record (owner only).
     *
     * @return the record index
     * @throws IllegalStateException if all {@value #RECORDS} are in use
     */
    synchronized int allocate(int state, int device, long a, long b) {
        Integer index = free.poll();
        if (index == null) {
            throw new IllegalStateException("a simulated process exports at most " + RECORDS + " allocations and events"
                    + " at once");
        }
        long at = at(index);
        file.set(ValueLayout.JAVA_INT, at + 8, device);
        file.set(ValueLayout.JAVA_LONG, at + 16, a);
        file.set(ValueLayout.JAVA_LONG, at + 24, b);
        for (int i = 0; i < IMPORTERS; i++) {
            file.set(ValueLayout.JAVA_LONG, at + 32 + 8L * i, 0);
        }
        INT.getAndAdd(file, at + 4, 1);
        INT.setVolatile(file, at, state);
        return index;
    }

    /** Gives a record back (owner only); handles to it no longer open. */
    synchronized void release(int index) {
        long at = at(index);
        INT.setVolatile(file, at, FREE);
        INT.getAndAdd(file, at + 4, 1);
        free.add(index);
    }

    /**
     * @return whether record {@code index} is live with this state, generation and device (a handle's claims)
     */
    boolean matches(int index, int state, int generation, int device) {
        if (index < 0 || index >= RECORDS) {
            return false;
        }
        long at = at(index);
        return (int) INT.getVolatile(file, at) == state && (int) INT.getVolatile(file, at + 4) == generation
                && file.get(ValueLayout.JAVA_INT, at + 8) == device;
    }

    int generation(int index) {
        return (int) INT.getVolatile(file, at(index) + 4);
    }

    long a(int index) {
        return (long) LONG.getVolatile(file, at(index) + 16);
    }

    long b(int index) {
        return (long) LONG.getVolatile(file, at(index) + 24);
    }

    /** @return the next record number of an event (its {@code records} count after this record) */
    long record(int index) {
        return (long) LONG.getAndAdd(file, at(index) + 16, 1L) + 1;
    }

    /** @return how many records of an event were issued */
    long records(int index) {
        return a(index);
    }

    /** @return how many records of an event have completed */
    long completed(int index) {
        return b(index);
    }

    /** Marks an event's record {@code n} (and all before it) complete. */
    void complete(int index, long n) {
        long at = at(index) + 24;
        long c;
        while ((c = (long) LONG.getVolatile(file, at)) < n && !LONG.compareAndSet(file, at, c, n)) {
            Thread.onSpinWait();
        }
    }

    /**
     * Counts a process in as an importer of an exported allocation.
     *
     * @throws IllegalStateException if {@value #IMPORTERS} live processes have it open already
     */
    void addImporter(int index, long process) {
        long at = at(index) + 32;
        for (int i = 0; i < IMPORTERS; i++) {
            long slot = at + 8L * i;
            long p = (long) LONG.getVolatile(file, slot);
            if ((p == 0 || !SimMachine.alive(p)) && LONG.compareAndSet(file, slot, p, process)) {
                return;
            }
        }
        throw new IllegalStateException("a simulated allocation can be open in at most " + IMPORTERS + " other processes");
    }

    /** Counts a process out as an importer. */
    void removeImporter(int index, long process) {
        long at = at(index) + 32;
        for (int i = 0; i < IMPORTERS; i++) {
            if (LONG.compareAndSet(file, at + 8L * i, process, 0L)) {
                return;
            }
        }
    }

    /** @return a live process that has the allocation open, or 0 */
    long liveImporter(int index) {
        long at = at(index) + 32;
        for (int i = 0; i < IMPORTERS; i++) {
            long p = (long) LONG.getVolatile(file, at + 8L * i);
            if (p != 0 && SimMachine.alive(p)) {
                return p;
            }
        }
        return 0;
    }

    private static long at(int index) {
        return HEADER + (long) index * RECORD;
    }

    @Override
    public void close() {
        arena.close();
    }
}
