package dev.kiln.executor;

import dev.kiln.transport.WorkerInfo;
import dev.kiln.transport.gpu.SimulatedGpus;
import io.aeron.Aeron;
import io.aeron.FragmentAssembler;
import io.aeron.Publication;
import io.aeron.Subscription;
import org.agrona.concurrent.BackoffIdleStrategy;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The main class of a child worker JVM on the driver's host: it connects to the driver's media
 * driver, runs a {@link WorkerRuntime} for the driver's control messages, and exits when the
 * driver asks, or as soon as the driver's process is gone, so no child outlives its driver.
 *
 * <p>Arguments: the media driver's directory, the worker's index, its process name, the driver's
 * pid, the driver's host name (as compiled plans name it), the host's shared-memory directory, and the
 * simulated GPUs the driver uses ({@link #gpuArgument}) or {@code -} for CUDA's. Started by {@link WorkerProcess};
 * not meant to be started by hand: workers on other hosts run {@link dev.kiln.KilnWorker}.
 */
public final class WorkerMain {

    private WorkerMain() {
    }

    /**
     * Runs the worker until the driver asks it to stop or goes away.
     *
     * @param args media driver directory, worker index, process name, driver pid, driver host name, shared-memory
     *             directory, simulated GPUs or {@code -}
     */
    public static void main(String[] args) {
        if (args.length != 7) {
            System.err.println("usage: WorkerMain <aeron dir> <index> <process name> <driver pid> <host name>"
                    + " <shm dir> <simulated GPUs or ->");
            System.exit(2);
        }
        int index = Integer.parseInt(args[1]);
        String processName = args[2];
        long driverPid = Long.parseLong(args[3]);
        ProcessHandle driver = ProcessHandle.of(driverPid).orElse(null);
        if (driver == null) {
            System.exit(3);
        }
        // No worker outlives its driver, however the driver ends.
        driver.onExit().thenRun(() -> Runtime.getRuntime().halt(3));
        Aeron aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(args[0])
                .errorHandler(e -> {
                    System.err.println("kiln worker " + processName + ": control plane error: " + e);
                    Runtime.getRuntime().halt(4);
                }));
        Publication toDriver = aeron.addPublication(ControlPlane.CHANNEL, 101 + 2 * index);
        Subscription fromDriver = aeron.addSubscription(ControlPlane.CHANNEL, 100 + 2 * index);
        String hostName = args[4];
        SimulatedGpus simulated = parseGpus(args[6]);
        Gpus gpus = simulated != null ? Gpus.simulated(Path.of(args[5]), hostName, simulated) : Gpus.detect();
        WorkerRuntime worker = new WorkerRuntime(processName, () -> new WorkerInfo(hostName, Map.of(),
                Runtime.getRuntime().availableProcessors(), gpus.describe()), gpus, toDriver, aeron);
        String failure = Message.write(Message.READY, 0).putLong(ProcessHandle.current().pid())
                .sendTo(toDriver, TimeUnit.SECONDS.toNanos(60));
        if (failure != null) {
            System.err.println("kiln worker " + processName + ": cannot reach the driver: " + failure);
            Runtime.getRuntime().halt(5);
        }
        FragmentAssembler assembler = new FragmentAssembler((buffer, offset, length, header) ->
                worker.handle(Message.read(buffer, offset, length)));
        BackoffIdleStrategy idle = new BackoffIdleStrategy(64, 16, TimeUnit.MICROSECONDS.toNanos(1),
                TimeUnit.MILLISECONDS.toNanos(1));
        while (worker.running()) {
            idle.idle(fromDriver.poll(assembler, 16));
        }
        worker.stopAll();
        gpus.close();
        aeron.close();
        System.exit(0);
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
