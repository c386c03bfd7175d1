package dev.kiln.executor;

import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.gpu.CudaIpcChannel;
import dev.kiln.transport.gpu.SimulatedDeviceOps;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Removes what processes that died without closing left behind, and nothing of a live process or another
 * user: Aeron directories of dead media drivers ({@link AeronDirectories#removeStale}), shared-memory channel
 * files ({@link ShmChannel#removeStale}), CUDA IPC handle files ({@link CudaIpcChannel#removeStale}) and
 * simulated GPU machines no live process uses ({@link SimulatedDeviceOps#removeAbandoned}). A new runtime
 * ({@code Kiln}, {@code KilnWorker}) calls {@link #remove} when it starts; the driver calls {@link #removeShared}
 * once a worker JVM of its host is dead (it died, or was killed because it hung).
 *
 * <p>Never throws: what cannot be removed is logged and left for the next runtime. Stateless; thread-safe.
 */
public final class StaleFiles {

    private static final System.Logger LOG = System.getLogger("dev.kiln");

    private StaleFiles() {
    }

    /**
     * Removes, in a run directory and a shared-memory directory, everything dead processes left there.
     *
     * @param runDirectory the Kiln run directory (Aeron directories)
     * @param shmDirectory the shared-memory directory (channel, handle and simulated GPU files)
     */
    public static void remove(Path runDirectory, Path shmDirectory) {
        AeronDirectories.removeStale(runDirectory);
        removeShared(shmDirectory);
        if (Files.isDirectory(shmDirectory)) {
            try {
                SimulatedDeviceOps.removeAbandoned(shmDirectory);
            } catch (IOException | RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, () -> "cannot remove abandoned simulated GPUs in " + shmDirectory
                        + ": " + e);
            }
        }
    }

    /**
     * Removes the shared-memory channel and CUDA IPC handle files of dead processes from a directory: after a
     * worker JVM died or was killed, the files it wrote.
     *
     * @param shmDirectory the shared-memory directory
     */
    public static void removeShared(Path shmDirectory) {
        if (!Files.isDirectory(shmDirectory)) {
            return;
        }
        try {
            ShmChannel.removeStale(shmDirectory);
            CudaIpcChannel.removeStale(shmDirectory);
        } catch (IOException | RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, () -> "cannot remove the shared-memory files of dead processes in "
                    + shmDirectory + ": " + e);
        }
    }
}
