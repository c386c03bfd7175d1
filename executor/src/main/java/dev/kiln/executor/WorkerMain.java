package dev.kiln.executor;

import dev.kiln.transport.WorkerInfo;
import dev.kiln.transport.gpu.SimulatedGpus;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Map;

/**
 * The main class of a child JVM on the driver's host: a thin entry to {@link WorkerNode}, the one worker. It
 * reads the secret its driver made for it from standard input (a pipe only the driver holds; never the command
 * line or the environment), joins the driver over IPC on the driver's media driver with it, serves until the
 * driver shuts it down or declares it lost, and exits with {@link WorkerNode#exitStatus()}. It also exits as
 * soon as the driver's process is gone, so no child outlives its driver.
 *
 * <p>Arguments: the media driver's directory, the IPC stream it receives on, its process name, the driver's
 * pid, the driver's host name (as compiled plans name it), the host's shared-memory directory, the simulated
 * GPUs the driver uses ({@link #gpuArgument}) or {@code -} for CUDA's, and the worker timeout in milliseconds.
 * Started by {@link WorkerProcess}; not meant to be started by hand: workers on other hosts run
 * {@link dev.kiln.KilnWorker}.
 */
public final class WorkerMain {

    /** Bytes of the secret a driver makes for each child JVM and writes to its standard input. */
    public static final int SECRET_BYTES = 32;

    private WorkerMain() {
    }

    /**
     * Runs the worker until the driver asks it to stop, declares it lost, or goes away.
     *
     * @param args media driver directory, stream, process name, driver pid, driver host name, shared-memory
     *             directory, simulated GPUs or {@code -}, worker timeout in ms; the secret comes on standard input
     */
    public static void main(String[] args) {
        if (args.length != 8) {
            System.err.println("usage: WorkerMain <aeron dir> <stream> <process name> <driver pid> <host name>"
                    + " <shm dir> <simulated GPUs or -> <timeout ms>, and the secret on standard input");
            System.exit(WorkerNode.EXIT_USAGE);
        }
        String processName = args[2];
        ProcessHandle driver = ProcessHandle.of(Long.parseLong(args[3])).orElse(null);
        if (driver == null) {
            System.exit(WorkerNode.EXIT_DRIVER_LOST);
        }
        // No worker outlives its driver, however the driver ends.
        driver.onExit().thenRun(() -> {
            System.err.println("kiln worker " + processName + ": the driver's process ended; leaving");
            Runtime.getRuntime().halt(WorkerNode.EXIT_DRIVER_LOST);
        });
        byte[] secret;
        try {
            secret = System.in.readNBytes(SECRET_BYTES);
            System.in.close();
        } catch (IOException e) {
            secret = new byte[0];
        }
        if (secret.length != SECRET_BYTES) {
            System.err.println("kiln worker " + processName + ": no secret on standard input (" + secret.length
                    + " of " + SECRET_BYTES + " bytes): a child JVM is started by its driver");
            System.exit(WorkerNode.EXIT_USAGE);
        }
        String hostName = args[4];
        Path shm = Path.of(args[5]);
        SimulatedGpus simulated = parseGpus(args[6]);
        Gpus gpus = simulated != null ? Gpus.simulated(shm, hostName, simulated) : Gpus.detect();
        WorkerInfo info = new WorkerInfo(hostName, Map.of(), Runtime.getRuntime().availableProcessors(),
                gpus.describe());
        WorkerNode node;
        try {
            node = WorkerNode.join(new WorkerNode.Settings(null, secret, processName, null, info, gpus, null, shm,
                    Duration.ofMillis(Long.parseLong(args[7])), new WorkerNode.Ipc(args[0], Integer.parseInt(args[1]))));
        } catch (WorkerNode.JoinFailedException e) {
            System.err.println("kiln worker " + processName + ": " + e.getMessage());
            System.exit(e.refused() ? WorkerNode.EXIT_REFUSED : WorkerNode.EXIT_JOIN_FAILED);
            return;
        } finally {
            Arrays.fill(secret, (byte) 0);
        }
        String why = node.ended().join();
        if (node.exitStatus() != WorkerNode.EXIT_DONE) {
            System.err.println("kiln worker " + processName + ": " + why);
        }
        System.exit(node.exitStatus());
    }

    /**
     * @param gpus simulated GPUs, or null
     * @return the command-line form {@link #main} reads: {@code count,bytesEach,peer|nopeer}, or {@code -}
     */
    static String gpuArgument(SimulatedGpus gpus) {
        return gpus == null ? "-" : gpus.count() + "," + gpus.bytesEach() + "," + (gpus.peerAccess() ? "peer" : "nopeer");
    }

    private static SimulatedGpus parseGpus(String argument) {
        if (argument.equals("-")) {
            return null;
        }
        String[] parts = argument.split(",");
        if (parts.length != 3 || !(parts[2].equals("peer") || parts[2].equals("nopeer"))) {
            throw new IllegalArgumentException("simulated GPUs must be count,bytes,peer|nopeer, got " + argument);
        }
        return new SimulatedGpus(Integer.parseInt(parts[0]), Long.parseLong(parts[1]), parts[2].equals("peer"));
    }
}
