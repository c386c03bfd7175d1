package dev.kiln.executor;

import dev.kiln.transport.WorkerInfo;
import io.aeron.Aeron;
import io.aeron.FragmentAssembler;
import io.aeron.Publication;
import io.aeron.Subscription;
import org.agrona.concurrent.BackoffIdleStrategy;

import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The main class of a child worker JVM on the driver's host: it connects to the driver's media
 * driver, runs a {@link WorkerRuntime} for the driver's control messages, and exits when the
 * driver asks, or as soon as the driver's process is gone, so no child outlives its driver.
 *
 * <p>Arguments: the media driver's directory, the worker's index, its process name, the driver's
 * pid and the driver's host name (as compiled plans name it). Started by {@link WorkerProcess};
 * not meant to be started by hand: workers on other hosts run {@link dev.kiln.KilnWorker}.
 */
public final class WorkerMain {

    private WorkerMain() {
    }

    /**
     * Runs the worker until the driver asks it to stop or goes away.
     *
     * @param args media driver directory, worker index, process name, driver pid, driver host name
     */
    public static void main(String[] args) {
        if (args.length != 5) {
            System.err.println("usage: WorkerMain <aeron dir> <index> <process name> <driver pid> <host name>");
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
        WorkerRuntime worker = new WorkerRuntime(processName, () -> new WorkerInfo(hostName, Map.of(),
                Runtime.getRuntime().availableProcessors(), Gpus.freeBytes()), toDriver, aeron);
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
        aeron.close();
        System.exit(0);
    }
}
