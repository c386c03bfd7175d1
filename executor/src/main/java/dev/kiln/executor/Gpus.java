package dev.kiln.executor;

import dev.kiln.cuda.Cuda;
import dev.kiln.transport.WorkerInfo;
import dev.kiln.transport.gpu.CudaDeviceOps;
import dev.kiln.transport.gpu.DeviceOps;
import dev.kiln.transport.gpu.SimulatedDeviceOps;
import dev.kiln.transport.gpu.SimulatedGpus;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.function.Supplier;

/**
 * The GPUs one Kiln runtime of this JVM uses (the driver's {@code Kiln}, a child worker JVM, a joined
 * worker): the CUDA devices of the machine, or simulated ones ({@code KilnOptions.simulatedGpus}), or
 * none. Describing them ({@link #describe()}: count, UUIDs, memory, peer access) creates no CUDA context;
 * a device gets one only when an actor is placed on it.
 *
 * <p>Simulated GPUs of one host are one simulated machine, kept in
 * {@code <shm directory>/kiln-gpusim-<user>-<host hash>}: every JVM of the host that simulates GPUs with the
 * same host name and shared-memory directory sees the same devices, as JVMs of a machine see its GPUs.
 *
 * <p>Thread-safe.
 */
public final class Gpus implements AutoCloseable {

    private static final System.Logger LOG = System.getLogger("dev.kiln");

    private final Supplier<DeviceOps> open;
    private final boolean simulated;
    private DeviceOps ops;
    private String whyNone;
    private boolean opened;
    private boolean closed;
    private volatile List<WorkerInfo.Gpu> described;

    private Gpus(Supplier<DeviceOps> open, boolean simulated) {
        this.open = open;
        this.simulated = simulated;
    }

    /**
     * @return the CUDA devices of this machine, or none (saying why) when CUDA is unavailable; CUDA is probed when
     *         first needed
     */
    public static Gpus detect() {
        return new Gpus(() -> {
            if (!Cuda.isAvailable()) {
                throw new IllegalStateException(Cuda.unavailableReason());
            }
            return new CudaDeviceOps();
        }, false);
    }

    /**
     * Attaches to the simulated machine of a host.
     *
     * @param shmDirectory the host's shared-memory directory
     * @param hostName     the host's name in plans
     * @param gpus         what the machine simulates
     * @return the simulated GPUs
     * @throws IllegalStateException if the host's simulated machine exists with other GPUs
     */
    public static Gpus simulated(Path shmDirectory, String hostName, SimulatedGpus gpus) {
        Path machine = machineDirectory(shmDirectory, hostName);
        return new Gpus(() -> SimulatedDeviceOps.attach(machine, gpus), true);
    }

    /** Opens the devices on first use; remembers why there are none. */
    private synchronized DeviceOps open() {
        if (!opened && !closed) {
            opened = true;
            try {
                ops = open.get();
            } catch (RuntimeException | LinkageError e) {
                whyNone = e.getMessage() != null ? e.getMessage() : e.toString();
            }
        }
        if (closed && ops == null && whyNone == null) {
            whyNone = "the runtime is closed";
        }
        return ops;
    }

    /**
     * @param shmDirectory a host's shared-memory directory
     * @param hostName     the host's name
     * @return where the host's simulated machine lives
     */
    public static Path machineDirectory(Path shmDirectory, String hostName) {
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256").digest(hostName.getBytes(StandardCharsets.UTF_8));
            String user = System.getProperty("user.name", "user").replaceAll("[^A-Za-z0-9_.-]", "_");
            return shmDirectory.resolve("kiln-gpusim-" + user + "-" + HexFormat.of().formatHex(digest, 0, 8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }

    /** @return whether these are simulated GPUs */
    public boolean simulated() {
        return simulated;
    }

    /** @return the number of devices (0 without GPUs) */
    public int count() {
        return describe().size();
    }

    /**
     * @return each device's UUID, memory and peer access, by device index; empty without GPUs, or when they cannot
     *         be read (logged as a WARNING). Read once.
     */
    public List<WorkerInfo.Gpu> describe() {
        List<WorkerInfo.Gpu> d = described;
        if (d == null) {
            d = read();
            described = d;
        }
        return d;
    }

    private List<WorkerInfo.Gpu> read() {
        DeviceOps ops = open();
        if (ops == null) {
            return List.of();
        }
        try {
            int n = Math.min(ops.deviceCount(), WorkerInfo.MAX_GPUS);
            List<WorkerInfo.Gpu> all = new ArrayList<>();
            for (int d = 0; d < n; d++) {
                long peers = 0;
                for (int p = 0; p < n; p++) {
                    if (ops.canAccessPeer(d, p)) {
                        peers |= 1L << p;
                    }
                }
                all.add(new WorkerInfo.Gpu(ops.deviceUuid(d), ops.totalBytes(d), peers));
            }
            return List.copyOf(all);
        } catch (RuntimeException | LinkageError e) {
            LOG.log(System.Logger.Level.WARNING, () -> "cannot describe the GPUs; this runtime advertises none: " + e);
            return List.of();
        }
    }

    /**
     * @return the device operations of these GPUs
     * @throws IllegalStateException if there are none, with the reason
     */
    public DeviceOps ops() {
        DeviceOps o = open();
        if (o == null) {
            throw new IllegalStateException("no GPUs: " + whyNone());
        }
        return o;
    }

    /** @return why there are no GPUs, for messages ("the CUDA runtime reports none" when CUDA has none) */
    public synchronized String whyNone() {
        return open() == null ? whyNone : "the CUDA runtime reports none";
    }

    /** Lets go of the devices (a simulated machine: this process's share of it); later uses find none. */
    @Override
    public synchronized void close() {
        closed = true;
        if (ops != null) {
            ops.close();
            ops = null;
            whyNone = "the runtime is closed";
        }
    }

    @Override
    public String toString() {
        return (simulated ? "simulated " : "") + "GPUs (" + (opened ? count() + " devices" : "not probed yet") + ")";
    }
}
