package dev.kiln.transport.gpu;

/**
 * The simulated GPUs of one machine (see {@link SimulatedDeviceOps}): how many, how much memory each
 * has, and whether they can reach each other's memory directly (peer access, as NVLink or a PCIe
 * switch gives). Immutable.
 *
 * @param count      devices, 1 to {@value #MAX_DEVICES}
 * @param bytesEach  memory of each device, in bytes, at least {@value #MIN_BYTES}; allocations beyond it fail
 *                   with {@code cudaErrorMemoryAllocation}. Nothing is reserved up front: simulated device
 *                   memory is sparse shared memory, backed as it is written
 * @param peerAccess whether every pair of devices has peer access; without it a direct copy between two
 *                   devices and an IPC open of another device's memory fail, as on GPUs without P2P
 */
public record SimulatedGpus(int count, long bytesEach, boolean peerAccess) {

    /** The most devices a simulated machine has. */
    public static final int MAX_DEVICES = 64;
    /** The least memory a simulated device has, in bytes. */
    public static final long MIN_BYTES = 1 << 20;

    /**
     * Checks the values.
     *
     * @throws IllegalArgumentException on a count out of range or too little memory
     */
    public SimulatedGpus {
        if (count < 1 || count > MAX_DEVICES) {
            throw new IllegalArgumentException("a simulated machine has 1 to " + MAX_DEVICES + " GPUs, got " + count);
        }
        if (bytesEach < MIN_BYTES) {
            throw new IllegalArgumentException("a simulated GPU has at least " + MIN_BYTES + " bytes, got " + bytesEach);
        }
    }

    /**
     * @param count     devices
     * @param bytesEach memory of each, in bytes
     * @return that many devices with peer access between all of them
     */
    public static SimulatedGpus of(int count, long bytesEach) {
        return new SimulatedGpus(count, bytesEach, true);
    }

    /**
     * @param value whether the devices have peer access
     * @return a copy with that setting
     */
    public SimulatedGpus withPeerAccess(boolean value) {
        return new SimulatedGpus(count, bytesEach, value);
    }

    @Override
    public String toString() {
        return count + " simulated GPUs of " + bytesEach + " bytes" + (peerAccess ? "" : ", no peer access");
    }
}
