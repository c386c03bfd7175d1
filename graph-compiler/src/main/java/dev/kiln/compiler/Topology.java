package dev.kiln.compiler;

import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Where each actor of a runtime lives, as the compiler sees it, which GPUs of a host can map each other's
 * memory, and how many cores each JVM has. Actors missing from the topology are not hosted by the runtime that
 * compiles (their runtime was closed, or they belong to another one).
 *
 * @param driverProcess the process of the driver (the thread calling {@code execute})
 * @param actors        placement by actor id
 * @param peerAccess    which pairs of GPUs of a host have CUDA peer access
 * @param cores         the cores of each JVM ({@code Runtime.availableProcessors()} there), by the JVM's placement
 *                      without a GPU ({@code new ActorPlacement(host, process)}); a JVM missing here has cores
 *                      unknown, and its actors each run on a thread of their own unless
 *                      {@link CompileOptions#actorThreads()} sets a limit
 */
public record Topology(ActorPlacement driverProcess, Map<Integer, ActorPlacement> actors, PeerAccess peerAccess,
                       Map<ActorPlacement, Integer> cores) {

    /** What {@link #cores(ActorPlacement)} returns for a JVM whose cores the topology does not know. */
    public static final int UNKNOWN_CORES = 0;

    /**
     * Creates a {@code Topology}.
     *
     * @param driverProcess the driver's placement
     * @param actors        placement by actor id (copied)
     * @param peerAccess    the pairs of GPUs with peer access
     * @param cores         cores by JVM (copied)
     * @throws NullPointerException     if an argument is null
     * @throws IllegalArgumentException if a JVM of {@code cores} is given with a GPU or with fewer than 1 core
     */
    public Topology {
        Objects.requireNonNull(driverProcess, "driverProcess");
        actors = Map.copyOf(actors);
        Objects.requireNonNull(peerAccess, "peerAccess");
        cores = Map.copyOf(cores);
        cores.forEach((jvm, n) -> {
            if (jvm.hasGpu()) {
                throw new IllegalArgumentException("cores are counted per JVM: name it without a GPU, got " + jvm);
            }
            if (n < 1) {
                throw new IllegalArgumentException(jvm + " must have >= 1 core, got " + n);
            }
        });
    }

    /**
     * A topology whose JVMs' cores are unknown: every actor runs on a thread of its own unless
     * {@link CompileOptions#actorThreads()} sets a limit.
     *
     * @param driverProcess the driver's placement
     * @param actors        placement by actor id (copied)
     * @param peerAccess    the pairs of GPUs with peer access
     */
    public Topology(ActorPlacement driverProcess, Map<Integer, ActorPlacement> actors, PeerAccess peerAccess) {
        this(driverProcess, actors, peerAccess, Map.of());
    }

    /**
     * A topology in which every pair of GPUs of a host has peer access ({@link PeerAccess#ALL}), as on a host whose
     * GPUs are all joined by NVLink or allow PCIe peer-to-peer, and whose JVMs' cores are unknown.
     *
     * @param driverProcess the driver's placement
     * @param actors        placement by actor id (copied)
     */
    public Topology(ActorPlacement driverProcess, Map<Integer, ActorPlacement> actors) {
        this(driverProcess, actors, PeerAccess.ALL);
    }

    /**
     * {@return the cores of the JVM of {@code placement} (whatever its GPU), or {@link #UNKNOWN_CORES}}
     *
     * @param placement an actor's or the driver's placement
     */
    public int cores(ActorPlacement placement) {
        return cores.getOrDefault(placement.jvm(), UNKNOWN_CORES);
    }

    /**
     * Which pairs of GPUs of one host have CUDA peer access ({@code cudaDeviceCanAccessPeer} both ways), by GPU
     * UUID. A process maps another device's memory ({@code cudaIpcOpenMemHandle} on a handle from another JVM)
     * only through peer access, so a CUDA IPC edge between two different devices needs it. A device always
     * reaches its own memory.
     *
     * @param all   whether every pair of devices of every host has peer access; {@code links} is then empty
     * @param links the pairs that have it, when {@code all} is false
     */
    public record PeerAccess(boolean all, Set<Link> links) {

        /** Every pair of devices of every host has peer access. */
        public static final PeerAccess ALL = new PeerAccess(true, Set.of());

        /** No two different devices have peer access. */
        public static final PeerAccess NONE = new PeerAccess(false, Set.of());

        /**
         * Creates a {@code PeerAccess}.
         *
         * @param all   whether every pair has peer access
         * @param links the pairs (copied)
         * @throws IllegalArgumentException if {@code all} comes with links
         * @throws NullPointerException     if {@code links} or one of them is null
         */
        public PeerAccess {
            links = Set.copyOf(links);
            if (all && !links.isEmpty()) {
                throw new IllegalArgumentException("PeerAccess.ALL takes no links, got " + links.size());
            }
        }

        /**
         * {@return peer access for exactly those pairs}
         *
         * @param links the pairs of devices that have peer access (unordered; copied)
         */
        public static PeerAccess of(Set<Link> links) {
            return new PeerAccess(false, links);
        }

        /**
         * {@return whether a process on one can map the other's memory: true for the same UUID, for {@link #ALL},
         *         and for a listed pair (in either order)}
         *
         * @param host  the host of both devices
         * @param uuidA one device's UUID
         * @param uuidB the other's
         */
        public boolean has(String host, String uuidA, String uuidB) {
            return uuidA.equals(uuidB) || all || links.contains(new Link(host, uuidA, uuidB));
        }

        /**
         * An unordered pair of devices of one host with peer access: {@code Link(h, x, y)} equals
         * {@code Link(h, y, x)} (the constructor puts the UUIDs in string order).
         *
         * @param host  the host
         * @param uuidA one device's UUID
         * @param uuidB the other device's UUID
         */
        public record Link(String host, String uuidA, String uuidB) {

            /**
             * Creates a {@code Link}.
             *
             * @param host  host name
             * @param uuidA a UUID
             * @param uuidB another UUID
             * @throws NullPointerException     if an argument is null
             * @throws IllegalArgumentException if both UUIDs are equal (a device always reaches its own memory)
             */
            public Link {
                Objects.requireNonNull(host, "host");
                Objects.requireNonNull(uuidA, "uuidA");
                Objects.requireNonNull(uuidB, "uuidB");
                if (uuidA.equals(uuidB)) {
                    throw new IllegalArgumentException("a link joins two different devices, got " + uuidA + " twice");
                }
                if (uuidA.compareTo(uuidB) > 0) {
                    String first = uuidB;
                    uuidB = uuidA;
                    uuidA = first;
                }
            }
        }
    }

    /**
     * Where one actor lives: its host, its JVM, and the GPU it uses with the device memory it has free. A GPU is
     * known by its UUID: JVMs of one host may see different {@code CUDA_VISIBLE_DEVICES}, so the same index in two
     * JVMs may be two GPUs, and one GPU may have two indices. Two placements are in one JVM when host and process
     * are equal ({@link #sameProcess}), on one GPU when host and UUID are equal ({@link #sameDevice});
     * {@code equals} compares every component.
     *
     * @param host            host name
     * @param process         process name within the host ({@code driver} for the driver's JVM)
     * @param device          the CUDA device index the actor uses, as its JVM numbers it, or {@link #NO_GPU}
     * @param deviceUuid      the UUID of that device ({@code cudaDeviceGetUuid}, e.g. {@code GPU-8f2c...}), the
     *                        same in every JVM of the host; null without a GPU
     * @param freeDeviceBytes free memory of that device when the graph is compiled, in bytes
     *                        ({@code cudaMemGetInfo}); 0 without a GPU
     */
    public record ActorPlacement(String host, String process, int device, String deviceUuid, long freeDeviceBytes) {

        /** The device index of a placement without a GPU. */
        public static final int NO_GPU = -1;

        /** The driver's own JVM on this host, without a GPU. */
        public static final ActorPlacement IN_DRIVER = new ActorPlacement("localhost", "driver");

        /**
         * Checks the values.
         *
         * @throws IllegalArgumentException if the device is below {@link #NO_GPU}, the free memory is negative, a
         *                                  placement without a GPU has free device memory or a UUID, or a placement
         *                                  with a GPU has a null or blank UUID
         * @throws NullPointerException     if host or process is null
         */
        public ActorPlacement {
            Objects.requireNonNull(host, "host");
            Objects.requireNonNull(process, "process");
            if (device < NO_GPU) {
                throw new IllegalArgumentException("device must be >= 0, or NO_GPU (-1), got " + device);
            }
            if (freeDeviceBytes < 0) {
                throw new IllegalArgumentException("freeDeviceBytes must be >= 0, got " + freeDeviceBytes);
            }
            if (device == NO_GPU && freeDeviceBytes != 0) {
                throw new IllegalArgumentException("a placement without a GPU has no free device memory, got "
                        + freeDeviceBytes);
            }
            if (device == NO_GPU && deviceUuid != null) {
                throw new IllegalArgumentException("a placement without a GPU has no device UUID, got " + deviceUuid);
            }
            if (device != NO_GPU && (deviceUuid == null || deviceUuid.isBlank())) {
                throw new IllegalArgumentException("a placement on gpu" + device + " needs the device's UUID, got "
                        + (deviceUuid == null ? "null" : "\"" + deviceUuid + "\""));
            }
        }

        /**
         * A placement whose device index means the same GPU in every JVM of its host: its UUID is
         * {@code "gpu" + device} (null for {@link #NO_GPU}). Use the canonical constructor with the real UUID when
         * JVMs of one host may number their GPUs differently.
         *
         * @param host            host name
         * @param process         process name within the host
         * @param device          the CUDA device index, or {@link #NO_GPU}
         * @param freeDeviceBytes free memory of that device, in bytes; 0 without a GPU
         * @throws IllegalArgumentException as the canonical constructor
         */
        public ActorPlacement(String host, String process, int device, long freeDeviceBytes) {
            this(host, process, device, device == NO_GPU ? null : "gpu" + device, freeDeviceBytes);
        }

        /**
         * A placement without a GPU.
         *
         * @param host    host name
         * @param process process name within the host
         */
        public ActorPlacement(String host, String process) {
            this(host, process, NO_GPU, null, 0);
        }

        /** {@return the placement of its JVM: the same host and process, without a GPU} */
        public ActorPlacement jvm() {
            return hasGpu() ? new ActorPlacement(host, process) : this;
        }

        /** {@return whether the actor uses a GPU} */
        public boolean hasGpu() {
            return device != NO_GPU;
        }

        /**
         * {@return whether both are in one JVM (same host and process), whatever their devices}
         *
         * @param other another placement
         */
        public boolean sameProcess(ActorPlacement other) {
            return host.equals(other.host) && process.equals(other.process);
        }

        /**
         * {@return whether both use one GPU: both have a GPU, on the same host, with the same UUID (their indices
         *         may differ)}
         *
         * @param other another placement
         */
        public boolean sameDevice(ActorPlacement other) {
            return hasGpu() && other.hasGpu() && host.equals(other.host) && deviceUuid.equals(other.deviceUuid);
        }

        /** @return {@code host/process}, followed by {@code /gpuN} (the index in its JVM) for a placement with a GPU */
        @Override
        public String toString() {
            return hasGpu() ? host + "/" + process + "/gpu" + device : host + "/" + process;
        }
    }
}
