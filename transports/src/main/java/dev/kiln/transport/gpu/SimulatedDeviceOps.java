package dev.kiln.transport.gpu;

import dev.kiln.cuda.CudaException;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.transport.PrivateFiles;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Simulated GPUs: {@link DeviceOps} on host memory that refuses, with CUDA's error names, what a device
 * refuses, so that GPU graphs are developed and tested on machines without a GPU (a laptop, CI). One object is
 * one process's view of one simulated machine ({@link SimulatedGpus}: N devices of B bytes, with or without
 * peer access). Every process of a host that opens the same machine directory sees the same devices: device
 * memory is shared memory (a sparse file per process and device, mapped by the processes that open its IPC
 * handles), interprocess events are counters in shared memory, and the bytes allocated on each device are
 * counted machine-wide.
 *
 * <p>What it enforces, as a GPU does:
 * <ul>
 *   <li>each host thread has a current device; a new thread starts on device 0;</li>
 *   <li>stream 0 is the legacy default stream of the device named with it; a stream belongs to one device, and
 *       an event is recorded only on a stream of its own device ({@code cudaErrorInvalidResourceHandle});
 *       a stream may wait for an event of another device, as CUDA allows;</li>
 *   <li>device memory is bounded ({@code cudaErrorMemoryAllocation}); a copy or kernel reaches memory of another
 *       device only with peer access, and so does an IPC open of another device's memory
 *       ({@code cudaErrorPeerAccessUnsupported});</li>
 *   <li>IPC handles open in another process of the same machine only ({@code cudaErrorDeviceUninitialized} in the
 *       exporting process), as memory or event of the device named when opening; freeing an allocation that
 *       another live process still has open is refused (CUDA leaves it undefined);</li>
 *   <li>host memory is pinned once ({@code cudaErrorHostMemoryAlreadyRegistered}); copies outside live
 *       allocations fail; a kernel whose host code fails leaves the process's devices in error, as a faulting
 *       kernel does ({@code cudaErrorIllegalAddress} from then on).</li>
 * </ul>
 * Each stream is a queue that runs its operations in order; a wait holds it until the event's record has run.
 * By default operations run as soon as they can, on whichever thread makes progress possible; {@link #pause()}
 * holds every stream of this process so that a test can see what happens while the GPU is busy. Its
 * communicators ({@link #joinCommunicator}) are {@link SimulatedCommunicator}s, NCCL's rules over loopback TCP.
 *
 * <p>Make one with {@link #create} (a private machine in a new directory, removed on {@link #close()}) or
 * {@link #attach} (the machine of a directory shared by the processes of a host; Kiln runtimes do this for
 * {@code KilnOptions.simulatedGpus}). Thread-safe: one lock per process.
 */
public final class SimulatedDeviceOps implements DeviceOps {

    private static final long MEMORY_MAGIC = 0x004D4350495F4D49L; // "IM_PICM"
    private static final long EVENT_MAGIC = 0x004543504F5F4D49L;
    private static final int HANDLE_BYTES = 64;
    private static final long POLL_MIN_NANOS = TimeUnit.MICROSECONDS.toNanos(20);
    private static final long POLL_MAX_NANOS = TimeUnit.MILLISECONDS.toNanos(1);
    private static final AtomicInteger OTHER_PROCESSES = new AtomicInteger();
    private static final Map<Path, Shared> ATTACHED = new HashMap<>();

    private final SimMachine machine;
    private final SimulatedGpus gpus;
    private final long process;
    private final boolean ownsDirectory;
    private final SimTable table;
    private final Arena arena = Arena.ofShared();
    private final DeviceFile[] files;
    /** Every device memory region this process can address: its allocations and its open IPC mappings. */
    private final TreeMap<Long, Region> regions = new TreeMap<>();
    private final Map<Long, Foreign> foreign = new HashMap<>();
    private final Map<Long, Stream> streams = new HashMap<>();
    private final Stream[] defaultStreams;
    private final Map<Long, Event> events = new HashMap<>();
    private final List<MemorySegment> pinned = new ArrayList<>();
    private final ThreadLocal<int[]> current = ThreadLocal.withInitial(() -> new int[1]);
    private long nextHandle = 0x5000;
    private boolean paused;
    private boolean polling;
    private CudaException sticky;
    private long unpinnedCopies;
    private boolean closed;

    private SimulatedDeviceOps(SimMachine machine, long process, boolean ownsDirectory) {
        this.machine = machine;
        this.gpus = machine.gpus();
        this.process = process;
        this.ownsDirectory = ownsDirectory;
        this.files = new DeviceFile[gpus.count()];
        this.defaultStreams = new Stream[gpus.count()];
        this.table = machine.join(process);
    }

    /** Opens the machine and joins it, again if it was removed meanwhile by its last process leaving. */
    private static SimulatedDeviceOps open(Path directory, SimulatedGpus gpus, long process, boolean ownsDirectory) {
        for (int attempt = 0; ; attempt++) {
            SimMachine m = SimMachine.open(directory, gpus);
            try {
                return new SimulatedDeviceOps(m, process, ownsDirectory);
            } catch (SimMachine.Vanished e) {
                m.close();
                if (attempt == 10) {
                    throw new IllegalStateException("cannot join the simulated machine in " + directory
                            + ": it keeps being removed", e);
                }
            } catch (RuntimeException e) {
                m.close();
                throw e;
            }
        }
    }

    /**
     * A simulated machine of its own, in a new directory (under {@code /dev/shm} when it exists, else the temp
     * directory), seen from this process; {@link #close()} removes it.
     *
     * @param gpus what to simulate
     * @return this process's view of the new machine
     */
    public static SimulatedDeviceOps create(SimulatedGpus gpus) {
        Path base = Files.isDirectory(Path.of("/dev/shm")) ? Path.of("/dev/shm") : Path.of(System.getProperty("java.io.tmpdir"));
        Path dir;
        try {
            dir = Files.createTempDirectory(base, "kiln-gpusim-",
                    PrivateFiles.DIRECTORY);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot make a directory for simulated GPUs in " + base, e);
        }
        return open(dir, gpus, ProcessHandle.current().pid(), true);
    }

    /**
     * This process's view of the simulated machine in {@code directory}, made if it does not exist yet. A JVM has
     * one view per machine: attaching again returns an object on the same process state, counted, so each must
     * be closed. Other JVMs of the host that attach to the directory share the devices, as processes of one host
     * share its GPUs.
     *
     * @param directory the machine's directory (Kiln keeps it in the shared-memory directory of the runtime)
     * @param gpus      what the machine simulates; must match it if it exists
     * @return the view
     * @throws IllegalStateException if the machine exists with other GPUs
     */
    public static SimulatedDeviceOps attach(Path directory, SimulatedGpus gpus) {
        Path key = directory.toAbsolutePath().normalize();
        synchronized (ATTACHED) {
            Shared s = ATTACHED.get(key);
            if (s == null) {
                s = new Shared(open(key, gpus, ProcessHandle.current().pid(), false));
                ATTACHED.put(key, s);
            } else if (!s.ops.gpus.equals(gpus)) {
                throw new IllegalStateException("the simulated machine in " + key + " has " + s.ops.gpus
                        + ", this process asked for " + gpus);
            }
            s.references++;
            return s.ops;
        }
    }

    /** One attached view and how many attach calls hold it. */
    private static final class Shared {
        final SimulatedDeviceOps ops;
        int references;

        Shared(SimulatedDeviceOps ops) {
            this.ops = ops;
        }
    }

    /**
     * Another process of the same machine, played in this JVM: it can open this one's IPC handles, and CUDA's
     * rules between processes apply to the two. For tests of cross-process channels in one JVM; close it.
     *
     * @return the other process
     */
    public SimulatedDeviceOps anotherProcess() {
        long id = -(ProcessHandle.current().pid() * 1000 + 1 + OTHER_PROCESSES.getAndIncrement() % 999);
        return open(machine.directory(), gpus, id, false);
    }

    /**
     * Removes the simulated machines in a directory that no live process uses any more (left by crashed runtimes and
     * tests); Kiln runtimes call it on their shared-memory directory when they start.
     *
     * @param directory a shared-memory directory
     * @return how many machines were removed
     * @throws IOException if the directory cannot be listed
     */
    public static int removeAbandoned(Path directory) throws IOException {
        return SimMachine.removeAbandoned(directory);
    }

    /** @return the machine's directory */
    public Path machineDirectory() {
        return machine.directory();
    }

    /** @return what the machine simulates */
    public SimulatedGpus gpus() {
        return gpus;
    }

    // ------------------------------------------------------------------ test and host access

    /** Holds every stream of this process: enqueued work waits until {@link #resume()}. */
    public synchronized void pause() {
        paused = true;
    }

    /** Runs all work that can run, and lets later work run at once again. */
    public synchronized void resume() {
        paused = false;
        drain();
    }

    /**
     * Enqueues host code as if it were a kernel on a stream: it runs in stream order.
     *
     * @param device the stream's device
     * @param stream the stream, 0 for the device's default stream
     * @param kernel what the kernel does (runs under this process's lock; keep it short)
     */
    public synchronized void enqueue(int device, long stream, Runnable kernel) {
        check();
        stream(device, stream).ops.add(Op.task(new StreamTask.Immediate(kernel)));
        drain();
    }

    /**
     * The simulated device memory at {@code pointer}, to fill or check from the host (no stream order: use it
     * when the streams that touch it are idle).
     *
     * @param pointer an address inside an allocation of this process or an open IPC mapping
     * @param bytes   how many bytes from there
     * @return a segment over that memory
     * @throws IllegalArgumentException if the range is not inside one live region
     */
    public synchronized MemorySegment memory(long pointer, long bytes) {
        return region(pointer, bytes, "memory").slice(pointer, bytes);
    }

    /** @return bytes of device memory this process allocated and has not freed, all devices together */
    public synchronized long allocatedBytes() {
        long sum = 0;
        for (Region r : regions.values()) {
            sum += r.opened ? 0 : r.bytes;
        }
        return sum;
    }

    /** @return streams created and not destroyed (the default streams are never created, so never counted) */
    public synchronized int liveStreams() {
        int n = 0;
        for (Stream s : streams.values()) {
            n += s.destroyed || s.isDefault ? 0 : 1;
        }
        return n;
    }

    /** @return events created or opened and not destroyed */
    public synchronized int liveEvents() {
        return events.size();
    }

    /** @return IPC memory mappings opened and not closed */
    public synchronized int openMappings() {
        int n = 0;
        for (Region r : regions.values()) {
            n += r.opened ? r.references : 0;
        }
        return n;
    }

    /** @return host segments pinned and not unpinned */
    public synchronized int pinnedSegments() {
        return pinned.size();
    }

    /** @return copies whose host side was not inside pinned memory (slow, synchronous copies on a GPU) */
    public synchronized long unpinnedCopies() {
        return unpinnedCopies;
    }

    // ------------------------------------------------------------------ devices

    @Override
    public long processId() {
        return process;
    }

    @Override
    public int deviceCount() {
        return gpus.count();
    }

    @Override
    public String deviceUuid(int device) {
        checkDevice(device, "cuDeviceGetUuid");
        return machine.uuid(device);
    }

    @Override
    public long totalBytes(int device) {
        checkDevice(device, "cuDeviceTotalMem");
        return gpus.bytesEach();
    }

    @Override
    public long freeBytes(int device) {
        checkDevice(device, "cudaMemGetInfo");
        return gpus.bytesEach() - machine.used(device);
    }

    @Override
    public boolean canAccessPeer(int device, int peer) {
        checkDevice(device, "cudaDeviceCanAccessPeer");
        checkDevice(peer, "cudaDeviceCanAccessPeer");
        return device != peer && gpus.peerAccess();
    }

    @Override
    public int currentDevice() {
        return current.get()[0];
    }

    @Override
    public void setCurrentDevice(int device) {
        checkDevice(device, "cudaSetDevice");
        current.get()[0] = device;
    }

    private void checkDevice(int device, String call) {
        if (device < 0 || device >= gpus.count()) {
            throw new CudaException(call, 101, "cudaErrorInvalidDevice", "invalid device ordinal (simulated machine has "
                    + gpus.count() + " GPUs, asked for gpu" + device + ")");
        }
    }

    // ------------------------------------------------------------------ memory

    @Override
    public synchronized long allocate(int device, long bytes) {
        check();
        checkDevice(device, "cudaMalloc");
        if (bytes <= 0) {
            throw new CudaException("cudaMalloc", 1, "cudaErrorInvalidValue", "invalid argument (" + bytes + " bytes)");
        }
        long size = Math.ceilDiv(bytes, GpuSlots.ALIGN) * GpuSlots.ALIGN;
        machine.reserve(device, size);
        DeviceFile f;
        long offset;
        try {
            f = file(device);
            offset = f.take(size);
        } catch (RuntimeException e) {
            machine.unreserve(device, size);
            throw e;
        }
        table.addUsed(device, size);
        Region r = new Region(f.memory.address() + offset, size, device, f.memory.asSlice(offset, size), false);
        r.offset = offset;
        regions.put(r.address, r);
        return r.address;
    }

    @Override
    public synchronized void free(long pointer) {
        check();
        Region r = regions.get(pointer);
        if (r == null || r.opened) {
            throw new CudaException("cudaFree", 1, "cudaErrorInvalidValue", "invalid argument (0x"
                    + Long.toHexString(pointer) + " is not the base of an allocation of this process"
                    + (r != null ? "; an IPC mapping is closed with cudaIpcCloseMemHandle" : "") + ")");
        }
        if (r.record >= 0) {
            long importer = table.liveImporter(r.record);
            if (importer != 0) {
                throw new IllegalStateException("cudaFree of 0x" + Long.toHexString(pointer) + " while simulated process "
                        + importer + " still has it open through an IPC handle: CUDA leaves this undefined; the importer"
                        + " must call cudaIpcCloseMemHandle first (close the end that opened the handle before the one"
                        + " that allocated it)");
            }
        }
        // cudaFree waits for the work of the device: here, this process's streams on it
        awaitIdle(r.device);
        regions.remove(pointer);
        if (r.record >= 0) {
            table.release(r.record);
        }
        files[r.device].give(r.offset, r.bytes);
        table.addUsed(r.device, -r.bytes);
        machine.unreserve(r.device, r.bytes);
    }

    /** Waits until this process's streams of {@code device} have run everything; interruptible. */
    private void awaitIdle(int device) {
        while (true) {
            drain();
            boolean busy = false;
            for (Stream s : streams.values()) {
                busy |= s.device == device && !s.ops.isEmpty();
            }
            if (!busy) {
                return;
            }
            waitForProgress("cudaFree");
        }
    }

    private DeviceFile file(int device) {
        DeviceFile f = files[device];
        if (f == null) {
            Path path = machine.memoryFile(process, device);
            try (FileChannel ch = FileChannel.open(path, Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                    StandardOpenOption.WRITE), PrivateFiles.FILE)) {
                ch.truncate(gpus.bytesEach());
                f = new DeviceFile(ch.map(FileChannel.MapMode.READ_WRITE, 0, gpus.bytesEach(), arena), gpus.bytesEach());
            } catch (IOException e) {
                throw new UncheckedIOException("cannot make simulated device memory " + path, e);
            }
            files[device] = f;
        }
        return f;
    }

    // ------------------------------------------------------------------ streams and events

    @Override
    public synchronized long createStream(int device) {
        check();
        checkDevice(device, "cudaStreamCreateWithFlags");
        long id = nextHandle += 16;
        streams.put(id, new Stream(id, device));
        return id;
    }

    /** Like CUDA: a stream with work left is destroyed once that work has run. */
    @Override
    public synchronized void destroyStream(long stream) {
        Stream s = streams.get(stream);
        if (s == null || s.destroyed || s.isDefault) {
            throw new CudaException("cudaStreamDestroy", 400, "cudaErrorInvalidResourceHandle", "invalid resource handle"
                    + " (stream 0x" + Long.toHexString(stream) + " of this process does not exist)");
        }
        s.destroyed = true;
        drain();
    }

    @Override
    public synchronized long createEvent(int device, boolean interprocess) {
        check();
        checkDevice(device, "cudaEventCreateWithFlags");
        long id = nextHandle += 16;
        int record = interprocess ? table.allocate(SimTable.EVENT, device, 0, 0) : -1;
        events.put(id, new Event(device, interprocess ? table : null, record, false));
        return id;
    }

    @Override
    public synchronized void destroyEvent(long event) {
        Event e = events.remove(event);
        if (e == null) {
            throw new CudaException("cudaEventDestroy", 400, "cudaErrorInvalidResourceHandle", "invalid resource handle"
                    + " (event 0x" + Long.toHexString(event) + " of this process does not exist)");
        }
        if (e.shared != null && !e.opened) {
            e.shared.release(e.record);
        }
    }

    @Override
    public synchronized void recordEvent(int device, long event, long stream) {
        check();
        Stream s = stream(device, stream);
        Event e = event(event, "cudaEventRecord");
        if (e.device != s.device) {
            throw new CudaException("cudaEventRecord", 400, "cudaErrorInvalidResourceHandle", "invalid resource handle"
                    + " (an event of gpu" + e.device + " recorded on a stream of gpu" + s.device + "; record an event on a"
                    + " stream of its own device)");
        }
        s.ops.add(Op.record(e, e.recordNext()));
        drain();
    }

    @Override
    public synchronized void waitEvent(int device, long stream, long event) {
        check();
        Stream s = stream(device, stream);
        Event e = event(event, "cudaStreamWaitEvent");
        s.ops.add(Op.await(e, e.records()));
        drain();
    }

    @Override
    public void synchronizeEvent(long event) {
        synchronized (this) {
            check();
            Event e = event(event, "cudaEventSynchronize");
            long target = e.records();
            while (true) {
                drain();
                if (e.completed() >= target) {
                    return;
                }
                waitForProgress("cudaEventSynchronize");
                check();
            }
        }
    }

    @Override
    public void synchronizeStream(int device, long stream) {
        synchronized (this) {
            check();
            Stream s = stream(device, stream);
            // wait for what is queued now, not for work enqueued later by other threads
            Op last = s.ops.peekLast();
            while (last != null && !last.done) {
                drain();
                if (last.done) {
                    break;
                }
                waitForProgress("cudaStreamSynchronize");
                check();
            }
        }
    }

    @Override
    public synchronized boolean queryStream(int device, long stream) {
        check();
        Stream s = stream(device, stream);
        drain();
        return s.ops.isEmpty();
    }

    /** Waits for the next drain, or briefly when work waits on another process; holding the lock. */
    private void waitForProgress(String call) {
        try {
            TimeUnit.NANOSECONDS.timedWait(this, polling ? POLL_MIN_NANOS : POLL_MAX_NANOS);
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(call + " was interrupted while the simulated GPU had work pending"
                    + (paused ? " (this simulated process is paused)" : ""), ie);
        }
    }

    @Override
    public synchronized void copyAsync(int device, long destination, long source, long bytes, MemcpyKind kind, long stream) {
        check();
        Stream s = stream(device, stream);
        if (bytes < 0) {
            throw new CudaException("cudaMemcpyAsync", 1, "cudaErrorInvalidValue", "invalid argument (" + bytes + " bytes)");
        }
        switch (kind) {
            case DEVICE_TO_DEVICE -> {
                reachable(region(destination, bytes, "cudaMemcpyAsync destination"), s.device, "cudaMemcpyAsync");
                reachable(region(source, bytes, "cudaMemcpyAsync source"), s.device, "cudaMemcpyAsync");
            }
            case DEVICE_TO_HOST -> reachable(region(source, bytes, "cudaMemcpyAsync source"), s.device, "cudaMemcpyAsync");
            case HOST_TO_DEVICE -> reachable(region(destination, bytes, "cudaMemcpyAsync destination"), s.device,
                    "cudaMemcpyAsync");
            default -> throw new IllegalArgumentException("the GPU channels do not copy " + kind);
        }
        s.ops.add(Op.copy(destination, source, bytes, kind));
        drain();
    }

    /** Memory of another device is reachable from a stream only with peer access. */
    private void reachable(Region r, int device, String call) {
        if (r.device != device && !gpus.peerAccess()) {
            throw new CudaException(call, 217, "cudaErrorPeerAccessUnsupported", "peer access is not supported between"
                    + " these two devices (memory of gpu" + r.device + " used on a stream of gpu" + device
                    + "; this simulated machine has no peer access)");
        }
    }

    @Override
    public synchronized void pinHost(MemorySegment host) {
        check();
        for (MemorySegment p : pinned) {
            if (host.address() < p.address() + p.byteSize() && p.address() < host.address() + host.byteSize()) {
                throw new CudaException("cudaHostRegister", 712, "cudaErrorHostMemoryAlreadyRegistered", "part or all of"
                        + " the requested memory range is already mapped (0x" + Long.toHexString(host.address()) + ")");
            }
        }
        pinned.add(host);
    }

    @Override
    public synchronized void unpinHost(MemorySegment host) {
        if (!pinned.removeIf(p -> p.address() == host.address() && p.byteSize() == host.byteSize())) {
            throw new CudaException("cudaHostUnregister", 713, "cudaErrorHostMemoryNotRegistered", "pointer does not"
                    + " correspond to a registered memory region (0x" + Long.toHexString(host.address()) + ")");
        }
    }

    // ------------------------------------------------------------------ IPC

    @Override
    public synchronized byte[] exportMemory(long pointer) {
        check();
        Region r = regions.get(pointer);
        if (r == null || r.opened) {
            throw new CudaException("cudaIpcGetMemHandle", 1, "cudaErrorInvalidValue", "invalid argument (0x"
                    + Long.toHexString(pointer) + " is not the base of an allocation of this process)");
        }
        if (r.record < 0) {
            r.record = table.allocate(SimTable.MEMORY, r.device, r.offset, r.bytes);
        }
        byte[] handle = handle(MEMORY_MAGIC, r.record, table.generation(r.record), r.device);
        MemorySegment h = MemorySegment.ofArray(handle);
        h.set(ValueLayout.JAVA_LONG_UNALIGNED, 40, r.offset);
        h.set(ValueLayout.JAVA_LONG_UNALIGNED, 48, r.bytes);
        return handle;
    }

    @Override
    public synchronized long openMemory(int device, byte[] handle) {
        check();
        checkDevice(device, "cudaIpcOpenMemHandle");
        Claim c = claim(handle, MEMORY_MAGIC, SimTable.MEMORY, "cudaIpcOpenMemHandle");
        MemorySegment h = MemorySegment.ofArray(handle);
        long offset = h.get(ValueLayout.JAVA_LONG_UNALIGNED, 40);
        long bytes = h.get(ValueLayout.JAVA_LONG_UNALIGNED, 48);
        if (offset != c.owner.table.a(c.record) || bytes != c.owner.table.b(c.record) || offset < 0 || bytes <= 0
                || offset > gpus.bytesEach() - bytes) {
            throw invalidHandle("cudaIpcOpenMemHandle", "the handle does not match its allocation");
        }
        if (c.device != device && !gpus.peerAccess()) {
            throw new CudaException("cudaIpcOpenMemHandle", 217, "cudaErrorPeerAccessUnsupported", "peer access is not"
                    + " supported between these two devices (memory of gpu" + c.device + " opened on gpu" + device
                    + "; this simulated machine has no peer access)");
        }
        for (Region r : regions.values()) {
            if (r.opened && r.owner == c.owner.process && r.record == c.record && r.generation == c.generation) {
                r.references++; // CUDA counts repeated opens of one handle in one context
                return r.address;
            }
        }
        MemorySegment arenaFile = c.owner.memory(c.device, machine, gpus.bytesEach(), arena);
        c.owner.table.addImporter(c.record, process);
        Region r = new Region(arenaFile.address() + offset, bytes, c.device, arenaFile.asSlice(offset, bytes), true);
        r.owner = c.owner.process;
        r.record = c.record;
        r.generation = c.generation;
        r.references = 1;
        regions.put(r.address, r);
        return r.address;
    }

    @Override
    public synchronized void closeMemory(long pointer) {
        Region r = regions.get(pointer);
        if (r == null || !r.opened) {
            throw new CudaException("cudaIpcCloseMemHandle", 1, "cudaErrorInvalidValue", "invalid argument (0x"
                    + Long.toHexString(pointer) + " is no IPC mapping of this process)");
        }
        if (--r.references > 0) {
            return;
        }
        awaitIdle(r.device);
        regions.remove(pointer);
        Foreign f = foreign.get(r.owner);
        if (f != null) {
            f.table.removeImporter(r.record, process);
        }
    }

    @Override
    public synchronized byte[] exportEvent(long event) {
        check();
        Event e = event(event, "cudaIpcGetEventHandle");
        if (e.shared == null || e.opened) {
            throw new CudaException("cudaIpcGetEventHandle", 400, "cudaErrorInvalidResourceHandle", "invalid resource"
                    + " handle (the event was not created with cudaEventInterprocess by this process)");
        }
        return handle(EVENT_MAGIC, e.record, table.generation(e.record), e.device);
    }

    @Override
    public synchronized long openEvent(int device, byte[] handle) {
        check();
        checkDevice(device, "cudaIpcOpenEventHandle");
        Claim c = claim(handle, EVENT_MAGIC, SimTable.EVENT, "cudaIpcOpenEventHandle");
        long id = nextHandle += 16;
        events.put(id, new Event(device, c.owner.table, c.record, true));
        return id;
    }

    private byte[] handle(long magic, int record, int generation, int device) {
        byte[] handle = new byte[HANDLE_BYTES];
        MemorySegment h = MemorySegment.ofArray(handle);
        h.set(ValueLayout.JAVA_LONG_UNALIGNED, 0, magic);
        h.set(ValueLayout.JAVA_LONG_UNALIGNED, 8, machine.id());
        h.set(ValueLayout.JAVA_LONG_UNALIGNED, 16, process);
        h.set(ValueLayout.JAVA_INT_UNALIGNED, 24, record);
        h.set(ValueLayout.JAVA_INT_UNALIGNED, 28, generation);
        h.set(ValueLayout.JAVA_INT_UNALIGNED, 32, device);
        return handle;
    }

    /** What a checked handle names. */
    private record Claim(Foreign owner, int record, int generation, int device) {
    }

    /** Checks a handle that came from another process against the exporter's table; it chooses nothing else. */
    private Claim claim(byte[] handle, long magic, int state, String call) {
        if (handle == null || handle.length != HANDLE_BYTES) {
            throw invalidHandle(call, "a handle has " + HANDLE_BYTES + " bytes");
        }
        MemorySegment h = MemorySegment.ofArray(handle);
        if (h.get(ValueLayout.JAVA_LONG_UNALIGNED, 0) != magic || h.get(ValueLayout.JAVA_LONG_UNALIGNED, 8) != machine.id()) {
            throw invalidHandle(call, "not a handle of this simulated machine");
        }
        long owner = h.get(ValueLayout.JAVA_LONG_UNALIGNED, 16);
        if (owner == process) {
            throw new CudaException(call, 201, "cudaErrorDeviceUninitialized", "invalid device context (a handle cannot"
                    + " be opened in the process that exported it)");
        }
        int record = h.get(ValueLayout.JAVA_INT_UNALIGNED, 24);
        int generation = h.get(ValueLayout.JAVA_INT_UNALIGNED, 28);
        int device = h.get(ValueLayout.JAVA_INT_UNALIGNED, 32);
        Foreign f = foreign(owner);
        if (f == null || device < 0 || device >= gpus.count() || !f.table.matches(record, state, generation, device)) {
            throw invalidHandle(call, "the exporting process freed it, or is gone");
        }
        return new Claim(f, record, generation, device);
    }

    private static CudaException invalidHandle(String call, String why) {
        return new CudaException(call, 400, "cudaErrorInvalidResourceHandle", "invalid resource handle (" + why + ")");
    }

    private Foreign foreign(long owner) {
        Foreign f = foreign.get(owner);
        if (f == null) {
            SimTable t = SimTable.map(machine.tableFile(owner));
            if (t == null) {
                return null;
            }
            f = new Foreign(owner, t);
            foreign.put(owner, f);
        }
        return f;
    }

    // ------------------------------------------------------------------ kernels and communicators

    @Override
    public synchronized void launch(int device, long stream, GpuKernel kernel, GpuKernel.Shape shape, Object... args) {
        check();
        Stream s = stream(device, stream);
        Object[] values = args.clone();
        for (int i = 0; i < values.length; i++) {
            switch (values[i]) {
                case DeviceTensor t -> {
                    if (t.device() != s.device) {
                        throw new IllegalArgumentException("kernel " + kernel.name() + ": argument " + i + " is on gpu"
                                + t.device() + ", the launch is on gpu" + s.device);
                    }
                    if (t.byteSize() > 0) {
                        reachable(region(t.pointer(), t.byteSize(), "kernel " + kernel.name() + " argument " + i), s.device,
                                "cuLaunchKernel");
                    }
                }
                case Integer x -> { }
                case Long x -> { }
                case Float x -> { }
                case Double x -> { }
                case null, default -> throw new IllegalArgumentException("kernel " + kernel.name() + ": argument " + i
                        + " is " + (values[i] == null ? "null" : "a " + values[i].getClass().getName()) + "; pass"
                        + " DeviceTensor, Integer, Long, Float or Double");
            }
        }
        s.ops.add(Op.task(new StreamTask.Immediate(() -> {
            try {
                kernel.host().run(new HostCall(shape, values));
            } catch (RuntimeException e) {
                sticky = new CudaException("cuLaunchKernel", 700, "cudaErrorIllegalAddress", "an illegal memory access was"
                        + " encountered (simulated kernel " + kernel.name() + " failed: " + e + ")");
            }
        })));
        drain();
    }

    /** The arguments of one simulated launch. */
    private final class HostCall implements GpuKernel.Call {
        private final GpuKernel.Shape shape;
        private final Object[] args;

        HostCall(GpuKernel.Shape shape, Object[] args) {
            this.shape = shape;
            this.args = args;
        }

        @Override
        public GpuKernel.Shape shape() {
            return shape;
        }

        @Override
        public MemorySegment tensor(int arg) {
            if (!(args[arg] instanceof DeviceTensor t)) {
                throw new IllegalArgumentException("argument " + arg + " is not a DeviceTensor");
            }
            return t.byteSize() == 0 ? MemorySegment.NULL : memory(t.pointer(), t.byteSize());
        }

        @Override
        public int i32(int arg) {
            return (Integer) args[arg];
        }

        @Override
        public long i64(int arg) {
            return (Long) args[arg];
        }

        @Override
        public float f32(int arg) {
            return (Float) args[arg];
        }

        @Override
        public double f64(int arg) {
            return (Double) args[arg];
        }
    }

    @Override
    public byte[] newCommunicatorId() {
        return SimulatedCommunicator.newId();
    }

    @Override
    public Communicator joinCommunicator(int size, byte[] id, int rank, int device, long stream) {
        synchronized (this) {
            check();
            stream(device, stream);
        }
        return SimulatedCommunicator.join(this, size, id, rank, device, stream);
    }

    /**
     * Enqueues work that completes when something outside the stream says so (a communicator's transfer); for
     * {@link SimulatedCommunicator}.
     */
    synchronized void enqueueTask(int device, long stream, StreamTask task) {
        check();
        stream(device, stream).ops.add(Op.task(task));
        drain();
    }

    /** Makes progress after a task completed from outside (a communicator's receiving thread). */
    synchronized void wake() {
        drain();
    }

    /**
     * Resolves device memory for a communicator, which may use it only on its device (or a peer).
     *
     * @return the memory
     */
    synchronized MemorySegment deviceMemory(int device, long pointer, long bytes, String call) {
        Region r = region(pointer, bytes, call);
        reachable(r, device, call);
        return r.slice(pointer, bytes);
    }

    // ------------------------------------------------------------------ the machinery

    private void check() {
        if (closed) {
            throw new IllegalStateException("this simulated GPU process is closed");
        }
        if (sticky != null) {
            throw sticky;
        }
    }

    private Stream stream(int device, long stream) {
        checkDevice(device, "stream");
        if (stream == 0) {
            Stream s = defaultStreams[device];
            if (s == null) {
                s = new Stream(0, device);
                s.isDefault = true;
                defaultStreams[device] = s;
                streams.put(-1L - device, s);
            }
            return s;
        }
        Stream s = streams.get(stream);
        if (s == null || s.destroyed) {
            throw new CudaException("stream", 400, "cudaErrorInvalidResourceHandle", "invalid resource handle (stream 0x"
                    + Long.toHexString(stream) + " of this process does not exist)");
        }
        if (s.device != device) {
            throw new IllegalArgumentException("stream 0x" + Long.toHexString(stream) + " belongs to gpu" + s.device
                    + ", the call names gpu" + device);
        }
        return s;
    }

    private Event event(long event, String call) {
        Event e = events.get(event);
        if (e == null) {
            throw new CudaException(call, 400, "cudaErrorInvalidResourceHandle", "invalid resource handle (event 0x"
                    + Long.toHexString(event) + " of this process does not exist)");
        }
        return e;
    }

    private Region region(long pointer, long bytes, String what) {
        Map.Entry<Long, Region> e = regions.floorEntry(pointer);
        if (e == null || bytes < 0 || pointer - e.getKey() > e.getValue().bytes - bytes) {
            throw new CudaException(what, 1, "cudaErrorInvalidValue", "invalid argument ([0x" + Long.toHexString(pointer)
                    + ", +" + bytes + ") is not inside a live device allocation or IPC mapping of this process)");
        }
        return e.getValue();
    }

    @SuppressWarnings("restricted") // the caller passes the address of live native host memory it owns
    private MemorySegment host(long address, long bytes) {
        for (MemorySegment p : pinned) {
            if (address >= p.address() && address + bytes <= p.address() + p.byteSize()) {
                return p.asSlice(address - p.address(), bytes);
            }
        }
        unpinnedCopies++;
        return MemorySegment.ofAddress(address).reinterpret(bytes);
    }

    /** Runs every operation that can run, stream by stream, until none can; holding the lock. */
    private void drain() {
        if (paused) {
            return;
        }
        boolean progress = true;
        boolean external = false;
        while (progress) {
            progress = false;
            for (Iterator<Stream> it = streams.values().iterator(); it.hasNext(); ) {
                Stream s = it.next();
                Op op;
                while ((op = s.ops.peek()) != null) {
                    if (!runs(op)) {
                        external |= op.kind == Op.WAIT && op.event.shared != null;
                        break;
                    }
                    s.ops.poll();
                    op.done = true;
                    progress = true;
                }
                if (s.destroyed && s.ops.isEmpty()) {
                    it.remove();
                }
            }
        }
        notifyAll();
        if (external && !polling) {
            polling = true;
            Thread.ofVirtual().name("kiln-gpusim-poll-" + process).start(this::poll);
        }
    }

    /** @return whether the operation has run (and may leave its stream) */
    private boolean runs(Op op) {
        switch (op.kind) {
            case Op.COPY -> {
                MemorySegment to = op.copyKind == MemcpyKind.DEVICE_TO_HOST ? host(op.destination, op.count)
                        : region(op.destination, op.count, "copy destination").slice(op.destination, op.count);
                MemorySegment from = op.copyKind == MemcpyKind.HOST_TO_DEVICE ? host(op.source, op.count)
                        : region(op.source, op.count, "copy source").slice(op.source, op.count);
                MemorySegment.copy(from, 0, to, 0, op.count);
                return true;
            }
            case Op.RECORD -> {
                op.event.complete(op.count);
                return true;
            }
            case Op.WAIT -> {
                return op.event.completed() >= op.count;
            }
            default -> {
                if (!op.started) {
                    op.started = true;
                    op.task.start();
                }
                return op.task.done();
            }
        }
    }

    /** Drains while a stream waits for an event another process completes: nothing here would wake it. */
    private void poll() {
        long nanos = POLL_MIN_NANOS;
        while (true) {
            LockSupport.parkNanos(nanos);
            synchronized (this) {
                if (closed) {
                    polling = false;
                    return;
                }
                polling = false;
                drain();
                if (!polling) {
                    return; // nothing waits on another process any more
                }
                polling = true; // drain found more: keep this poller rather than the one it would start
            }
            nanos = Math.min(POLL_MAX_NANOS, nanos * 2);
        }
    }

    /**
     * Frees what this process holds on the machine: its streams, events, allocations and mappings, and its files;
     * a machine made by {@link #create} is removed. An attached view is freed when its last holder closes it.
     * Idempotent.
     */
    @Override
    public void close() {
        if (!ownsDirectory && process == ProcessHandle.current().pid()) {
            synchronized (ATTACHED) {
                Shared s = ATTACHED.get(machine.directory());
                if (s != null && s.ops == this) {
                    if (--s.references > 0) {
                        return;
                    }
                    ATTACHED.remove(machine.directory());
                }
            }
        }
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            notifyAll();
            for (Region r : regions.values()) {
                if (r.opened) {
                    Foreign f = foreign.get(r.owner);
                    if (f != null) {
                        f.table.removeImporter(r.record, process);
                    }
                } else {
                    machine.unreserve(r.device, r.bytes);
                }
            }
            regions.clear();
            streams.clear();
            events.clear();
            for (Foreign f : foreign.values()) {
                f.table.close();
            }
            foreign.clear();
            table.close();
            arena.close();
            machine.leave(process);
            machine.close();
            if (ownsDirectory) {
                SimMachine.remove(machine.directory());
            }
        }
    }

    @Override
    public String toString() {
        return "SimulatedDeviceOps(process " + process + ", " + gpus + ", " + machine.directory() + ")";
    }

    // ------------------------------------------------------------------ state

    /** A process's memory on one device: the mapped file and the free ranges in it (owner only). */
    private static final class DeviceFile {
        final MemorySegment memory;
        final TreeMap<Long, Long> free = new TreeMap<>();

        DeviceFile(MemorySegment memory, long bytes) {
            this.memory = memory;
            free.put(0L, bytes);
        }

        /** First fit; the machine-wide count already bounds the total, so this fails only on fragmentation. */
        long take(long size) {
            for (Map.Entry<Long, Long> e : free.entrySet()) {
                if (e.getValue() >= size) {
                    long at = e.getKey();
                    free.remove(at);
                    if (e.getValue() > size) {
                        free.put(at + size, e.getValue() - size);
                    }
                    return at;
                }
            }
            throw new CudaException("cudaMalloc", 2, "cudaErrorMemoryAllocation", "out of memory (simulated device memory"
                    + " of this process is too fragmented for " + size + " bytes)");
        }

        void give(long at, long size) {
            Map.Entry<Long, Long> before = free.floorEntry(at);
            if (before != null && before.getKey() + before.getValue() == at) {
                at = before.getKey();
                size += before.getValue();
                free.remove(at);
            }
            Long after = free.remove(at + size);
            if (after != null) {
                size += after;
            }
            free.put(at, size);
        }
    }

    /** Device memory this process can address: one of its allocations, or an IPC mapping of another's. */
    private static final class Region {
        final long address;
        final long bytes;
        final int device;
        final MemorySegment memory;
        final boolean opened;
        long offset;
        /** The exporter's table record: of this process if it exported it, of the owner if opened; else -1. */
        int record = -1;
        int generation;
        long owner;
        int references;

        Region(long address, long bytes, int device, MemorySegment memory, boolean opened) {
            this.address = address;
            this.bytes = bytes;
            this.device = device;
            this.memory = memory;
            this.opened = opened;
        }

        MemorySegment slice(long pointer, long n) {
            return memory.asSlice(pointer - address, n);
        }
    }

    /** Another process of the machine, as this one reaches it: its table and the device files it mapped. */
    private static final class Foreign {
        final long process;
        final SimTable table;
        final MemorySegment[] memories = new MemorySegment[SimulatedGpus.MAX_DEVICES];

        Foreign(long process, SimTable table) {
            this.process = process;
            this.table = table;
        }

        MemorySegment memory(int device, SimMachine machine, long bytes, Arena arena) {
            if (memories[device] == null) {
                Path path = machine.memoryFile(process, device);
                try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                    if (ch.size() != bytes) {
                        throw new IllegalStateException(path + " is not simulated device memory of " + bytes + " bytes");
                    }
                    memories[device] = ch.map(FileChannel.MapMode.READ_WRITE, 0, bytes, arena);
                } catch (IOException e) {
                    throw invalidHandle("cudaIpcOpenMemHandle", "cannot map " + path + ": " + e.getMessage());
                }
            }
            return memories[device];
        }
    }

    /** A stream: one device, operations run in order. */
    private static final class Stream {
        final long id;
        final int device;
        final ArrayDeque<Op> ops = new ArrayDeque<>();
        boolean isDefault;
        boolean destroyed;

        Stream(long id, int device) {
            this.id = id;
            this.device = device;
        }
    }

    /** An event: local counters, or (interprocess, or opened from another process) a record of a shared table. */
    private static final class Event {
        final int device;
        final SimTable shared;
        final int record;
        final boolean opened;
        long records;
        long completed;

        Event(int device, SimTable shared, int record, boolean opened) {
            this.device = device;
            this.shared = shared;
            this.record = record;
            this.opened = opened;
        }

        long recordNext() {
            return shared != null ? shared.record(record) : ++records;
        }

        long records() {
            return shared != null ? shared.records(record) : records;
        }

        long completed() {
            return shared != null ? shared.completed(record) : completed;
        }

        void complete(long n) {
            if (shared != null) {
                shared.complete(record, n);
            } else {
                completed = Math.max(completed, n);
            }
        }
    }

    /** One queued operation of a stream. */
    private static final class Op {
        static final int COPY = 0;
        static final int RECORD = 1;
        static final int WAIT = 2;
        static final int TASK = 3;

        final int kind;
        final long destination;
        final long source;
        /** Bytes of a copy; the record number a RECORD completes or a WAIT waits for. */
        final long count;
        final MemcpyKind copyKind;
        final Event event;
        final StreamTask task;
        boolean started;
        boolean done;

        private Op(int kind, long destination, long source, long count, MemcpyKind copyKind, Event event, StreamTask task) {
            this.kind = kind;
            this.destination = destination;
            this.source = source;
            this.count = count;
            this.copyKind = copyKind;
            this.event = event;
            this.task = task;
        }

        static Op copy(long destination, long source, long bytes, MemcpyKind kind) {
            return new Op(COPY, destination, source, bytes, kind, null, null);
        }

        static Op record(Event e, long n) {
            return new Op(RECORD, 0, 0, n, null, e, null);
        }

        static Op await(Event e, long n) {
            return new Op(WAIT, 0, 0, n, null, e, null);
        }

        static Op task(StreamTask t) {
            return new Op(TASK, 0, 0, 0, null, null, t);
        }
    }
}
