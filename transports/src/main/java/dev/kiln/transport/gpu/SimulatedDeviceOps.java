package dev.kiln.transport.gpu;

import dev.kiln.cuda.MemcpyKind;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * {@link DeviceOps} on host memory, for tests of the GPU channels on machines without a GPU. "Device"
 * memory is native host memory (so a {@link CpuCommunicator} can move it), and each stream is a queue
 * that runs its operations in order, a {@link #waitEvent} holding it until the event's record has run,
 * as on a GPU. By default operations run as soon as they can, on the calling thread; {@link #pause()}
 * holds every stream so that a test can see what would happen while the GPU is busy, and
 * {@link #resume()} runs them. Misuse a GPU would punish fails loudly here: copies outside a live
 * allocation, opening a handle in the process that exported it, exporting an event that is not
 * interprocess, pinning memory twice.
 *
 * <p>Several simulated processes can share one simulated machine ({@link #anotherProcess()}), so that
 * CUDA IPC handles are exported by one and opened by the other. It also counts what a test wants to
 * see freed: {@link #allocatedBytes()}, {@link #liveStreams()}, {@link #liveEvents()},
 * {@link #openMappings()}, {@link #pinnedSegments()}, and {@link #unpinnedCopies()}.
 *
 * <p>Never chosen by anything on its own; production code passes {@link CudaDeviceOps}. Thread-safe: one
 * lock guards the whole machine.
 */
public final class SimulatedDeviceOps implements DeviceOps {

    /** How long {@link #synchronizeEvent} waits for paused work before it gives up. */
    private static final long SYNC_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(20);
    private static final long MEMORY_MAGIC = 0x4D43504953494DL; // "SIMIPCM"
    private static final long EVENT_MAGIC = 0x45435049534D4DL;

    private final Machine machine;
    private final long process;

    /** A new simulated machine, seen from its first process. */
    public SimulatedDeviceOps() {
        this(new Machine(), 1);
    }

    private SimulatedDeviceOps(Machine machine, long process) {
        this.machine = machine;
        this.process = process;
    }

    /** @return another process on the same simulated machine: it can open this one's IPC handles */
    public SimulatedDeviceOps anotherProcess() {
        synchronized (machine) {
            return new SimulatedDeviceOps(machine, ++machine.processes);
        }
    }

    /** Holds every stream of the machine: enqueued work waits until {@link #resume()}. */
    public void pause() {
        synchronized (machine) {
            machine.paused = true;
        }
    }

    /** Runs all work that can run, and lets later work run at once again. */
    public void resume() {
        synchronized (machine) {
            machine.paused = false;
            machine.drain();
        }
    }

    /**
     * Enqueues host code as if it were a kernel on {@code stream}: it runs in stream order.
     *
     * @param stream the stream
     * @param kernel what the kernel does (runs under the machine's lock; keep it short)
     */
    public void enqueue(long stream, Runnable kernel) {
        synchronized (machine) {
            machine.stream(stream).ops.add(new Op(Op.TASK, 0, 0, 0, null, kernel));
            machine.drain();
        }
    }

    /**
     * The simulated device memory at {@code pointer}, to fill or check from the host.
     *
     * @param pointer an address inside a live allocation
     * @param bytes   how many bytes from there
     * @return a segment over that memory
     * @throws IllegalArgumentException if the range is not inside one live allocation
     */
    public MemorySegment memory(long pointer, long bytes) {
        synchronized (machine) {
            return machine.device(pointer, bytes, "memory");
        }
    }

    /** @return bytes of device memory allocated and not freed, all devices together */
    public long allocatedBytes() {
        synchronized (machine) {
            long sum = 0;
            for (Allocation a : machine.allocations.values()) {
                sum += a.bytes;
            }
            return sum;
        }
    }

    /** @return streams created and not destroyed */
    public int liveStreams() {
        synchronized (machine) {
            return machine.streams.size() - (machine.streams.containsKey(0L) ? 1 : 0);
        }
    }

    /** @return events created or opened and not destroyed (an opened one counts until destroyed) */
    public int liveEvents() {
        synchronized (machine) {
            int sum = 0;
            for (Event e : machine.events.values()) {
                sum += e.references;
            }
            return sum;
        }
    }

    /** @return IPC memory mappings opened and not closed */
    public int openMappings() {
        synchronized (machine) {
            return machine.mappings;
        }
    }

    /** @return host segments pinned and not unpinned */
    public int pinnedSegments() {
        synchronized (machine) {
            return machine.pinned.size();
        }
    }

    /** @return copies whose host side was not inside pinned memory (slow, synchronous copies on a GPU) */
    public long unpinnedCopies() {
        synchronized (machine) {
            return machine.unpinnedCopies;
        }
    }

    @Override
    public long processId() {
        return process;
    }

    @Override
    public long allocate(int device, long bytes) {
        if (device < 0 || bytes <= 0) {
            throw new IllegalArgumentException("allocate " + bytes + " bytes on device " + device);
        }
        synchronized (machine) {
            Arena arena = Arena.ofShared();
            MemorySegment memory = arena.allocate(bytes, 256);
            machine.allocations.put(memory.address(), new Allocation(device, bytes, memory, arena));
            return memory.address();
        }
    }

    @Override
    public void free(long pointer) {
        synchronized (machine) {
            Allocation a = machine.allocations.remove(pointer);
            if (a == null) {
                throw new IllegalArgumentException("free of 0x" + Long.toHexString(pointer) + ": not an allocation");
            }
            a.arena.close();
        }
    }

    @Override
    public long createStream(int device) {
        synchronized (machine) {
            long id = machine.nextHandle += 16;
            machine.streams.put(id, new Stream());
            return id;
        }
    }

    @Override
    public void destroyStream(long stream) {
        synchronized (machine) {
            Stream s = machine.streams.get(stream);
            if (s == null || stream == 0) {
                throw new IllegalArgumentException("destroy of stream 0x" + Long.toHexString(stream) + ": not a stream");
            }
            if (!s.ops.isEmpty()) {
                throw new IllegalStateException("stream 0x" + Long.toHexString(stream) + " destroyed with "
                        + s.ops.size() + " operations pending");
            }
            machine.streams.remove(stream);
        }
    }

    @Override
    public long createEvent(int device, boolean interprocess) {
        synchronized (machine) {
            long id = machine.nextHandle += 16;
            machine.events.put(id, new Event(interprocess));
            return id;
        }
    }

    @Override
    public void destroyEvent(long event) {
        synchronized (machine) {
            Event e = machine.event(event);
            if (--e.references == 0) {
                machine.events.remove(event);
            }
        }
    }

    @Override
    public void recordEvent(long event, long stream) {
        synchronized (machine) {
            Event e = machine.event(event);
            machine.stream(stream).ops.add(new Op(Op.RECORD, 0, 0, ++e.records, e, null));
            machine.drain();
        }
    }

    @Override
    public void waitEvent(long stream, long event) {
        synchronized (machine) {
            Event e = machine.event(event);
            machine.stream(stream).ops.add(new Op(Op.WAIT, 0, 0, e.records, e, null));
            machine.drain();
        }
    }

    @Override
    public void synchronizeEvent(long event) {
        synchronized (machine) {
            Event e = machine.event(event);
            long target = e.records;
            long deadline = System.nanoTime() + SYNC_TIMEOUT_NANOS;
            machine.drain();
            while (e.completed < target) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new IllegalStateException("simulated event 0x" + Long.toHexString(event)
                            + " did not complete record " + target + " within " + SYNC_TIMEOUT_NANOS / 1_000_000
                            + " ms (machine paused: " + machine.paused + ")");
                }
                try {
                    TimeUnit.NANOSECONDS.timedWait(machine, left);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while synchronizing a simulated event", ie);
                }
            }
        }
    }

    @Override
    public void copyAsync(long destination, long source, long bytes, MemcpyKind kind, long stream) {
        synchronized (machine) {
            machine.checkCopy(destination, source, bytes, kind);
            machine.stream(stream).ops.add(new Op(Op.COPY, destination, source, bytes, null, null, kind));
            machine.drain();
        }
    }

    @Override
    public void pinHost(MemorySegment host) {
        synchronized (machine) {
            for (MemorySegment p : machine.pinned) {
                if (host.address() < p.address() + p.byteSize() && p.address() < host.address() + host.byteSize()) {
                    throw new IllegalStateException("host memory at 0x" + Long.toHexString(host.address())
                            + " is already pinned (cudaErrorHostMemoryAlreadyRegistered)");
                }
            }
            machine.pinned.add(host);
        }
    }

    @Override
    public void unpinHost(MemorySegment host) {
        synchronized (machine) {
            if (!machine.pinned.removeIf(p -> p.address() == host.address() && p.byteSize() == host.byteSize())) {
                throw new IllegalStateException("host memory at 0x" + Long.toHexString(host.address()) + " is not pinned");
            }
        }
    }

    @Override
    public byte[] exportMemory(long pointer) {
        synchronized (machine) {
            if (!machine.allocations.containsKey(pointer)) {
                throw new IllegalArgumentException("export of 0x" + Long.toHexString(pointer)
                        + ": not the base of an allocation");
            }
            return handle(MEMORY_MAGIC, pointer);
        }
    }

    @Override
    public long openMemory(byte[] handle) {
        long pointer = opened(handle, MEMORY_MAGIC, "memory");
        synchronized (machine) {
            if (!machine.allocations.containsKey(pointer)) {
                throw new IllegalArgumentException("open of a memory handle whose allocation was freed");
            }
            machine.mappings++;
            return pointer;
        }
    }

    @Override
    public void closeMemory(long pointer) {
        synchronized (machine) {
            if (machine.mappings == 0) {
                throw new IllegalStateException("close of 0x" + Long.toHexString(pointer) + ": no mapping is open");
            }
            machine.mappings--;
        }
    }

    @Override
    public byte[] exportEvent(long event) {
        synchronized (machine) {
            if (!machine.event(event).interprocess) {
                throw new IllegalArgumentException("export of event 0x" + Long.toHexString(event)
                        + ": created without interprocess (cudaErrorInvalidResourceHandle)");
            }
            return handle(EVENT_MAGIC, event);
        }
    }

    @Override
    public long openEvent(byte[] handle) {
        long event = opened(handle, EVENT_MAGIC, "event");
        synchronized (machine) {
            machine.event(event).references++;
            return event;
        }
    }

    private byte[] handle(long magic, long value) {
        byte[] handle = new byte[64];
        MemorySegment h = MemorySegment.ofArray(handle);
        h.set(ValueLayout.JAVA_LONG_UNALIGNED, 0, magic);
        h.set(ValueLayout.JAVA_LONG_UNALIGNED, 8, process);
        h.set(ValueLayout.JAVA_LONG_UNALIGNED, 16, value);
        return handle;
    }

    private long opened(byte[] handle, long magic, String what) {
        MemorySegment h = MemorySegment.ofArray(handle);
        if (handle.length != 64 || h.get(ValueLayout.JAVA_LONG_UNALIGNED, 0) != magic) {
            throw new IllegalArgumentException("not a simulated " + what + " handle");
        }
        if (h.get(ValueLayout.JAVA_LONG_UNALIGNED, 8) == process) {
            throw new IllegalArgumentException("a " + what + " handle cannot be opened in the process that exported it"
                    + " (cudaErrorInvalidContext)");
        }
        return h.get(ValueLayout.JAVA_LONG_UNALIGNED, 16);
    }

    @Override
    public String toString() {
        return "SimulatedDeviceOps(process " + process + ")";
    }

    private record Allocation(int device, long bytes, MemorySegment memory, Arena arena) {
    }

    private static final class Stream {
        final ArrayDeque<Op> ops = new ArrayDeque<>();
    }

    private static final class Event {
        final boolean interprocess;
        long records;
        long completed;
        int references = 1;

        Event(boolean interprocess) {
            this.interprocess = interprocess;
        }
    }

    private record Op(int kind, long destination, long source, long count, Event event, Runnable task,
                      MemcpyKind copyKind) {
        static final int COPY = 0;
        static final int RECORD = 1;
        static final int WAIT = 2;
        static final int TASK = 3;

        Op(int kind, long destination, long source, long count, Event event, Runnable task) {
            this(kind, destination, source, count, event, task, null);
        }
    }

    /** The shared state of one simulated machine; every access holds its monitor. */
    private static final class Machine {
        final TreeMap<Long, Allocation> allocations = new TreeMap<>();
        final Map<Long, Stream> streams = new HashMap<>();
        final Map<Long, Event> events = new HashMap<>();
        final List<MemorySegment> pinned = new ArrayList<>();
        long nextHandle = 0x5000;
        long processes = 1;
        int mappings;
        long unpinnedCopies;
        boolean paused;

        Stream stream(long id) {
            Stream s = streams.get(id);
            if (s == null) {
                if (id != 0) {
                    throw new IllegalArgumentException("stream 0x" + Long.toHexString(id) + " does not exist");
                }
                s = new Stream();
                streams.put(0L, s);
            }
            return s;
        }

        Event event(long id) {
            Event e = events.get(id);
            if (e == null) {
                throw new IllegalArgumentException("event 0x" + Long.toHexString(id) + " does not exist");
            }
            return e;
        }

        MemorySegment device(long pointer, long bytes, String what) {
            Map.Entry<Long, Allocation> e = allocations.floorEntry(pointer);
            if (e == null || bytes < 0 || pointer + bytes > e.getKey() + e.getValue().bytes) {
                throw new IllegalArgumentException(what + ": [0x" + Long.toHexString(pointer) + ", +" + bytes
                        + ") is not inside a live device allocation");
            }
            return e.getValue().memory.asSlice(pointer - e.getKey(), bytes);
        }

        @SuppressWarnings("restricted") // test memory: the caller passes the address of live native host memory
        MemorySegment host(long address, long bytes) {
            for (MemorySegment p : pinned) {
                if (address >= p.address() && address + bytes <= p.address() + p.byteSize()) {
                    return p.asSlice(address - p.address(), bytes);
                }
            }
            unpinnedCopies++;
            return MemorySegment.ofAddress(address).reinterpret(bytes);
        }

        void checkCopy(long destination, long source, long bytes, MemcpyKind kind) {
            switch (kind) {
                case DEVICE_TO_DEVICE -> {
                    device(destination, bytes, "copy destination");
                    device(source, bytes, "copy source");
                }
                case DEVICE_TO_HOST -> device(source, bytes, "copy source");
                case HOST_TO_DEVICE -> device(destination, bytes, "copy destination");
                default -> throw new IllegalArgumentException("the GPU channels do not copy " + kind);
            }
        }

        /** Runs every operation that can run, stream by stream, until none can. */
        void drain() {
            if (paused) {
                return;
            }
            boolean progress = true;
            while (progress) {
                progress = false;
                for (Stream s : streams.values()) {
                    Op op;
                    while ((op = s.ops.peek()) != null && runnable(op)) {
                        s.ops.poll();
                        run(op);
                        progress = true;
                    }
                }
            }
            notifyAll();
        }

        private static boolean runnable(Op op) {
            return op.kind != Op.WAIT || op.event.completed >= op.count;
        }

        private void run(Op op) {
            switch (op.kind) {
                case Op.COPY -> {
                    MemorySegment to = op.copyKind == MemcpyKind.DEVICE_TO_HOST ? host(op.destination, op.count)
                            : device(op.destination, op.count, "copy destination");
                    MemorySegment from = op.copyKind == MemcpyKind.HOST_TO_DEVICE ? host(op.source, op.count)
                            : device(op.source, op.count, "copy source");
                    MemorySegment.copy(from, 0, to, 0, op.count);
                }
                case Op.RECORD -> op.event.completed = Math.max(op.event.completed, op.count);
                case Op.TASK -> op.task.run();
                default -> {
                    // a satisfied wait
                }
            }
        }
    }
}
