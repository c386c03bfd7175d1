package dev.kiln.transport.gpu;

import dev.kiln.cuda.CudaException;
import dev.kiln.transport.PrivateFiles;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The shared part of a simulated machine: a directory that every simulated process of the machine opens,
 * holding the {@code machine} file (the {@link SimulatedGpus} it simulates, a random machine id, and the
 * bytes allocated on each device by all processes together) and each process's files ({@code p<id>.tab},
 * its table of exported memory and interprocess events, and {@code p<id>.d<device>}, its device memory).
 * Processes that died without closing are reclaimed when another process attaches: their files are
 * removed and their allocations no longer count.
 *
 * <p>The machine file's counters are updated with atomic operations on the mapping; attaching, reclaiming
 * and leaving hold an exclusive file lock on it. Thread-safe.
 */
final class SimMachine implements AutoCloseable {

    private static final long MAGIC = 0x4D49534755504B4CL; // "LKPUGSIM" little-endian: Kiln GPU simulator
    private static final int VERSION = 1;
    private static final int FILE_BYTES = 4096;
    private static final int USED = 64;
    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();
    /** At most 18 digits, so that every id that matches parses: a file of another name is not a process's. */
    private static final Pattern PROCESS_FILE = Pattern.compile("p(-?[0-9]{1,18})\\.(tab|d[0-9]{1,2})");

    private final Path directory;
    private final SimulatedGpus gpus;
    private final long id;
    private final Arena arena;
    private final FileChannel channel;
    private final MemorySegment file;

    private SimMachine(Path directory, SimulatedGpus gpus, long id, Arena arena, FileChannel channel,
                       MemorySegment file) {
        this.directory = directory;
        this.gpus = gpus;
        this.id = id;
        this.arena = arena;
        this.channel = channel;
        this.file = file;
    }

    /**
     * Opens the machine in {@code directory}, creating it (directory and file, mode 0700/0600) if it does not
     * exist yet.
     *
     * @param directory the machine's directory
     * @param gpus      what the machine simulates; must match the machine if it exists
     * @return the machine
     * @throws IllegalStateException if the machine exists with other GPUs, or its file is not a machine file (and a
     *                               live process uses it), or the directory is a link or open to other users
     * @throws UncheckedIOException  if the directory or file cannot be made or mapped
     */
    static SimMachine open(Path directory, SimulatedGpus gpus) {
        try {
            Files.createDirectories(directory, PrivateFiles.DIRECTORY);
            String why = PrivateFiles.whyNotPrivate(directory);
            if (why != null) {
                // Another user could have made it (its name is known) to have this process map and write files of
                // their choosing through links in it.
                throw new IllegalStateException("the simulated machine directory " + directory + " " + why
                        + ": remove it, and let Kiln make it (mode 0700)");
            }
            Path path = directory.resolve("machine");
            for (int attempt = 0; ; attempt++) {
                if (!Files.exists(path)) {
                    create(directory, path, gpus);
                }
                FileChannel channel = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
                Arena arena = Arena.ofShared();
                String mismatch;
                try {
                    MemorySegment file = channel.size() == FILE_BYTES
                            ? channel.map(FileChannel.MapMode.READ_WRITE, 0, FILE_BYTES, arena) : null;
                    SimulatedGpus existing = file == null ? null : recorded(file);
                    if (existing == null) {
                        mismatch = "is not a simulated machine of this Kiln version";
                    } else if (existing.equals(gpus)) {
                        return new SimMachine(directory, gpus, file.get(ValueLayout.JAVA_LONG, 32), arena, channel,
                                file);
                    } else {
                        mismatch = "has " + existing;
                    }
                } catch (RuntimeException | IOException e) {
                    channel.close();
                    arena.close();
                    throw e;
                }
                // Another machine is here: if no live process uses it (its last process crashed), it is replaced.
                boolean abandoned;
                try {
                    FileLock lock = channel.lock();
                    try {
                        abandoned = !anyLive(directory);
                        if (abandoned) {
                            // its dead processes' files go with it: their memory was booked on the old machine
                            try (DirectoryStream<Path> files = Files.newDirectoryStream(directory, "p*")) {
                                for (Path f : files) {
                                    Files.deleteIfExists(f);
                                }
                            }
                            Files.deleteIfExists(path);
                        }
                    } finally {
                        lock.release();
                    }
                } finally {
                    channel.close();
                    arena.close();
                }
                if (!abandoned || attempt == 3) {
                    throw new IllegalStateException("the simulated machine in " + directory + " " + mismatch
                            + ", this process asked for " + gpus + ": give every process of a host the same "
                            + "KilnOptions.simulatedGpus");
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open the simulated machine in " + directory + ": " + e.getMessage(), e);
        }
    }

    /** @return the GPUs a machine file records, or null if it is not the file of a machine of this version */
    private static SimulatedGpus recorded(MemorySegment file) {
        if (file.get(ValueLayout.JAVA_LONG, 0) != MAGIC || file.get(ValueLayout.JAVA_INT, 8) != VERSION) {
            return null;
        }
        try {
            return new SimulatedGpus(file.get(ValueLayout.JAVA_INT, 12), file.get(ValueLayout.JAVA_LONG, 16),
                    file.get(ValueLayout.JAVA_INT, 24) != 0);
        } catch (IllegalArgumentException e) {
            return null; // a count or size no machine has: corrupt
        }
    }

    /**
     * Removes the simulated machines ({@code kiln-gpusim-*} directories) in {@code parent} that no live process uses
     * any more: what runtimes and tests that crashed left behind. Links, other users' directories and directories open
     * to other users are left alone: they are not machines this user's runtimes made.
     *
     * @param parent a shared-memory directory
     * @return how many machines were removed
     * @throws IOException if the directory cannot be listed
     */
    static int removeAbandoned(Path parent) throws IOException {
        int removed = 0;
        try (DirectoryStream<Path> dirs = Files.newDirectoryStream(parent, "kiln-gpusim-*")) {
            for (Path dir : dirs) {
                Path machine = dir.resolve("machine");
                if (PrivateFiles.whyNotPrivate(dir) != null || !Files.isRegularFile(machine, LinkOption.NOFOLLOW_LINKS)) {
                    continue;
                }
                try (FileChannel channel = FileChannel.open(machine, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                    FileLock lock = channel.lock();
                    try {
                        if (!anyLive(dir)) {
                            remove(dir);
                            removed++;
                        }
                    } finally {
                        lock.release();
                    }
                } catch (java.nio.file.AccessDeniedException | NoSuchFileException e) {
                    // another user's machine, or removed meanwhile
                }
            }
        }
        return removed;
    }

    /** @return whether a process that still runs has a table in the machine's directory */
    private static boolean anyLive(Path directory) throws IOException {
        try (DirectoryStream<Path> files = Files.newDirectoryStream(directory, "p*.tab")) {
            for (Path table : files) {
                Matcher m = PROCESS_FILE.matcher(table.getFileName().toString());
                if (m.matches() && alive(Long.parseLong(m.group(1)))) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Writes the file aside, then links it in place: exactly one of several racing processes wins. */
    private static void create(Path directory, Path path, SimulatedGpus gpus) throws IOException {
        Path tmp = Files.createTempFile(directory, "machine", ".tmp");
        try {
            byte[] bytes = new byte[FILE_BYTES];
            MemorySegment m = MemorySegment.ofArray(bytes);
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, 0, MAGIC);
            m.set(ValueLayout.JAVA_INT_UNALIGNED, 8, VERSION);
            m.set(ValueLayout.JAVA_INT_UNALIGNED, 12, gpus.count());
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, 16, gpus.bytesEach());
            m.set(ValueLayout.JAVA_INT_UNALIGNED, 24, gpus.peerAccess() ? 1 : 0);
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, 32, new SecureRandom().nextLong());
            Files.write(tmp, bytes);
            try {
                Files.createLink(path, tmp);
            } catch (FileAlreadyExistsException raced) {
                // another process created it first; use theirs
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /** @return the machine's directory */
    Path directory() {
        return directory;
    }

    /** @return what the machine simulates */
    SimulatedGpus gpus() {
        return gpus;
    }

    /** @return the machine's random id, which every IPC handle of it carries */
    long id() {
        return id;
    }

    /**
     * @param device a device index
     * @return a UUID for the device, stable for the machine, formatted as {@code nvidia-smi} does
     */
    String uuid(int device) {
        String hex = HexFormat.of().toHexDigits(id) + String.format(Locale.ROOT, "%08x%08x", device, ~device);
        return "GPU-" + hex.substring(0, 8) + "-" + hex.substring(8, 12) + "-" + hex.substring(12, 16) + "-"
                + hex.substring(16, 20) + "-" + hex.substring(20, 32);
    }

    /** @return bytes allocated on {@code device} by every process of the machine */
    long used(int device) {
        return (long) LONG.getVolatile(file, (long) USED + 8L * device);
    }

    /**
     * Books device memory, refusing what would exceed the device.
     *
     * @throws CudaException {@code cudaErrorMemoryAllocation} when the device is full
     */
    void reserve(int device, long bytes) {
        long at = USED + 8L * device;
        while (true) {
            long used = (long) LONG.getVolatile(file, at);
            if (bytes > gpus.bytesEach() - used) {
                throw new CudaException("cudaMalloc", 2, "cudaErrorMemoryAllocation", "out of memory (simulated gpu"
                        + device + ": " + bytes + " bytes asked, " + (gpus.bytesEach() - used) + " of "
                        + gpus.bytesEach() + " free)");
            }
            if (LONG.compareAndSet(file, at, used, used + bytes)) {
                return;
            }
        }
    }

    /** Gives booked device memory back. */
    void unreserve(int device, long bytes) {
        LONG.getAndAdd(file, (long) USED + 8L * device, -bytes);
    }

    /** @return the file of a process's table */
    Path tableFile(long process) {
        return directory.resolve("p" + process + ".tab");
    }

    /** @return the file of a process's memory on a device */
    Path memoryFile(long process, int device) {
        return directory.resolve("p" + process + ".d" + device);
    }

    /**
     * @param process a simulated process id: an OS pid, or the negative id of another simulated process of the JVM
     *                with OS pid {@code -process / 1000} ({@link SimulatedDeviceOps#anotherProcess()})
     * @return whether the OS process behind it runs
     */
    static boolean alive(long process) {
        long pid = process > 0 ? process : -process / 1000;
        return ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false);
    }

    /**
     * Joins a process to the machine: removes the files of processes that are gone (giving their memory back, as a
     * driver reclaims a dead process's allocations), then creates the process's table. Holds the machine lock.
     *
     * @param process the joining process's id
     * @return its table
     * @throws Vanished if the machine was removed meanwhile (its last process left): open it again
     */
    SimTable join(long process) {
        try {
            FileLock lock = channel.lock();
            try {
                if (!Files.exists(directory.resolve("machine"))) {
                    throw new Vanished();
                }
                reclaimDead();
                return SimTable.create(tableFile(process));
            } finally {
                lock.release();
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot join the simulated machine in " + directory, e);
        }
    }

    /**
     * Removes a process's files; the last process to leave removes the machine. Holds the machine lock.
     *
     * @param process the leaving process's id
     */
    void leave(long process) {
        try {
            FileLock lock = channel.lock();
            try {
                Files.deleteIfExists(tableFile(process));
                for (int d = 0; d < gpus.count(); d++) {
                    Files.deleteIfExists(memoryFile(process, d));
                }
                // A child JVM that was killed left its files: they must not keep the machine alive.
                reclaimDead();
                boolean last;
                try (DirectoryStream<Path> tables = Files.newDirectoryStream(directory, "p*.tab")) {
                    last = !tables.iterator().hasNext();
                }
                if (last) {
                    Files.deleteIfExists(directory.resolve("machine"));
                    try {
                        Files.deleteIfExists(directory);
                    } catch (java.nio.file.DirectoryNotEmptyException e) {
                        // a file that is not the machine's: left alone
                    }
                }
            } finally {
                lock.release();
            }
        } catch (IOException e) {
            // what is left is reclaimed by the next process that joins
        }
    }

    /** The machine was removed between opening its file and joining it. */
    static final class Vanished extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Vanished() {
            super("the simulated machine was removed while a process joined it", null, false, false);
        }
    }

    private void reclaimDead() throws IOException {
        try (DirectoryStream<Path> files = Files.newDirectoryStream(directory, "p*.tab")) {
            for (Path table : files) {
                Matcher m = PROCESS_FILE.matcher(table.getFileName().toString());
                if (!m.matches() || alive(Long.parseLong(m.group(1)))) {
                    continue;
                }
                long process = Long.parseLong(m.group(1));
                long[] used = SimTable.usedBytes(table, gpus.count());
                for (int d = 0; d < used.length; d++) {
                    if (used[d] != 0) {
                        unreserve(d, used[d]);
                    }
                    Files.deleteIfExists(memoryFile(process, d));
                }
                Files.deleteIfExists(table);
            }
        } catch (NoSuchFileException e) {
            // a process removed its own files meanwhile
        }
    }

    /** Unmaps the machine file; the directory stays for the machine's other processes. */
    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException e) {
            // nothing left to do
        }
        arena.close();
    }

    /**
     * Removes a machine's directory and everything in it; for the runtime that made the machine, when it
     * closes. Files other processes still map stay mapped until they unmap them.
     *
     * @param directory the machine's directory
     * @throws UncheckedIOException if something cannot be removed
     */
    static void remove(Path directory) {
        try (DirectoryStream<Path> files = Files.newDirectoryStream(directory)) {
            for (Path f : files) {
                Files.deleteIfExists(f);
            }
            Files.deleteIfExists(directory);
        } catch (NoSuchFileException e) {
            // gone already
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove the simulated machine " + directory, e);
        }
    }
}
