package dev.kiln.compiler;

import java.util.Map;
import java.util.Objects;

/**
 * Where each actor of a runtime lives, as the compiler sees it. Actors missing from the
 * topology are not hosted by the runtime that compiles (their runtime was closed, or they
 * belong to another one).
 *
 * @param driverProcess the process of the driver (the thread calling {@code execute})
 * @param actors        placement by actor id
 */
public record Topology(ActorPlacement driverProcess, Map<Integer, ActorPlacement> actors) {

    /**
     * @param driverProcess the driver's placement
     * @param actors        placement by actor id (copied)
     */
    public Topology {
        actors = Map.copyOf(actors);
    }

    /**
     * Where one actor lives: its host, its JVM, and the GPU it uses with the device memory it has free.
     * Two placements are in one JVM when host and process are equal ({@link #sameProcess}); {@code equals}
     * also compares the device and the free memory.
     *
     * @param host            host name
     * @param process         process name within the host ({@code driver} for the driver's JVM)
     * @param device          the CUDA device index the actor uses, or {@link #NO_GPU}
     * @param freeDeviceBytes free memory of that device when the graph is compiled, in bytes
     *                        ({@code cudaMemGetInfo}); 0 without a GPU
     */
    public record ActorPlacement(String host, String process, int device, long freeDeviceBytes) {

        /** The device index of a placement without a GPU. */
        public static final int NO_GPU = -1;

        /** The driver's own JVM on this host, without a GPU. */
        public static final ActorPlacement IN_DRIVER = new ActorPlacement("localhost", "driver");

        /**
         * Checks the values.
         *
         * @throws IllegalArgumentException if the device is below {@link #NO_GPU}, the free memory is
         *                                  negative, or a placement without a GPU has free device memory
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
        }

        /**
         * A placement without a GPU.
         *
         * @param host    host name
         * @param process process name within the host
         */
        public ActorPlacement(String host, String process) {
            this(host, process, NO_GPU, 0);
        }

        /** @return whether the actor uses a GPU */
        public boolean hasGpu() {
            return device != NO_GPU;
        }

        /**
         * @param other another placement
         * @return whether both are in one JVM (same host and process), whatever their devices
         */
        public boolean sameProcess(ActorPlacement other) {
            return host.equals(other.host) && process.equals(other.process);
        }

        /**
         * @param other another placement
         * @return whether both use one GPU: both have a GPU, with the same host and device index
         */
        public boolean sameDevice(ActorPlacement other) {
            return hasGpu() && other.hasGpu() && host.equals(other.host) && device == other.device;
        }

        /** @return {@code host/process}, followed by {@code /gpuN} for a placement with a GPU */
        @Override
        public String toString() {
            return hasGpu() ? host + "/" + process + "/gpu" + device : host + "/" + process;
        }
    }
}
