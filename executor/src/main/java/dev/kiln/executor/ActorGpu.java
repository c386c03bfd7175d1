package dev.kiln.executor;

import dev.kiln.transport.gpu.DeviceOps;

/**
 * The GPU of an actor placed on one ({@code ActorOptions.gpu(n)}), bound to the actor's thread for the
 * thread's whole life: the device, made the thread's current device before the actor's factory runs and
 * kept current, and a stream of its own on which the actor's GPU work and Kiln's copies for it are ordered.
 * User code reaches it through {@code dev.kiln.GpuContext}.
 *
 * <p>Made and closed on the actor's thread; read from any thread once made.
 */
public final class ActorGpu {

    private static final ThreadLocal<ActorGpu> CURRENT = new ThreadLocal<>();

    private final DeviceOps ops;
    private final int device;
    private final long stream;
    private final String uuid;

    private ActorGpu(DeviceOps ops, int device, long stream, String uuid) {
        this.ops = ops;
        this.device = device;
        this.stream = stream;
        this.uuid = uuid;
    }

    /**
     * Binds a device to the calling thread: makes it current, creates the thread's stream.
     *
     * @param ops    the runtime's device operations
     * @param device the device index
     * @return the binding
     * @throws RuntimeException what the device operations throw (no such device, CUDA errors)
     */
    static ActorGpu bind(DeviceOps ops, int device) {
        ops.setCurrentDevice(device);
        ActorGpu gpu = new ActorGpu(ops, device, ops.createStream(device), ops.deviceUuid(device));
        CURRENT.set(gpu);
        return gpu;
    }

    /** @return the GPU bound to the calling thread, or null if it is not a GPU actor's thread */
    public static ActorGpu current() {
        return CURRENT.get();
    }

    /** @return the device operations */
    public DeviceOps ops() {
        return ops;
    }

    /** @return the device index, in this JVM */
    public int device() {
        return device;
    }

    /** @return the actor's stream */
    public long stream() {
        return stream;
    }

    /** @return the device's UUID */
    public String uuid() {
        return uuid;
    }

    /** Waits for the stream's work and destroys it; the thread's binding ends. On the actor's thread. */
    void unbind() {
        CURRENT.remove();
        try {
            ops.synchronizeStream(device, stream);
        } finally {
            ops.destroyStream(stream);
        }
    }

    @Override
    public String toString() {
        return "gpu" + device + " (" + uuid + "), stream 0x" + Long.toHexString(stream);
    }
}
