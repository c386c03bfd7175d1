package dev.kiln;

import dev.kiln.compiler.ActorDeathPolicy;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.executor.ActorThread;
import dev.kiln.executor.RemoteHost;
import dev.kiln.graph.Node;

import java.util.ArrayDeque;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static dev.kiln.GraphState.CLOSED;
import static dev.kiln.GraphState.DIED;
import static dev.kiln.GraphState.OPEN;
import static dev.kiln.GraphState.RESTARTING;
import static dev.kiln.GraphState.STARTING;

/**
 * A compiled graph's life after it opened: what it does when an actor of its deployment dies, by its
 * {@link ActorDeathPolicy} (fail for good, or restart: settle the executions in flight, recreate the dead actors,
 * compile again, start a new deployment and open it), and how it closes.
 *
 * <p>Death reports ({@link #failed}, {@link #actorDied}, {@link #reported}, {@link #workerDied}) may come from any
 * thread (a dying actor's, the control plane's, a process reaper's) and never wait; a restart runs on a thread of its
 * own ({@code kiln-restart-<graph>}); {@link #close} may be called from any thread and waits for the teardown.
 */
final class GraphLifecycle {

    private static final System.Logger LOG = System.getLogger("dev.kiln");

    /** The graph's name. */
    private final String name;
    private final CompiledGraph<?, ?> graph;
    private final Kiln kiln;
    private final Node<?> output;
    private final CompileOptions options;
    private final ActorDeathPolicy policy;
    private final GraphState state;
    private final GraphDriver driver;
    /** The deployment a restart is starting, until it replaces the live one; for the runtime's death reports. */
    private volatile Deployment next;
    private volatile Thread restarter;
    /** When each restart within the policy's window began (nanoTime); guarded by itself. */
    private final ArrayDeque<Long> restartTimes = new ArrayDeque<>();
    private final AtomicInteger restartsBegun = new AtomicInteger();
    private volatile int restartsDone;

    /**
     * @param graph   the graph
     * @param kiln    its runtime, which recreates actors and compiles again
     * @param output  its result node
     * @param options its options
     * @param state   its state
     * @param driver  its driver
     */
    GraphLifecycle(CompiledGraph<?, ?> graph, Kiln kiln, Node<?> output, CompileOptions options, GraphState state,
                   GraphDriver driver) {
        this.name = graph.toString();
        this.graph = graph;
        this.kiln = kiln;
        this.output = output;
        this.options = options;
        this.policy = options.onActorDeath();
        this.state = state;
        this.driver = driver;
    }

    /**
     * Opens the first deployment in every JVM and opens the graph; a death reported meanwhile is acted on once the
     * graph is open (by its policy).
     *
     * @throws dev.kiln.compiler.GraphCompileException if a worker JVM cannot take its part
     */
    void start() {
        Deployment first = driver.live();
        first.start();
        state.compareAndSet(STARTING, OPEN);
        String failure = first.failure();
        if (failure != null) {
            failed(first, failure, null);
        }
    }

    /** @return how many restarts finished */
    int restarts() {
        return restartsDone;
    }

    /**
     * A loop of deployment {@code d} in this JVM died, on its actor's thread.
     *
     * @param d     the deployment
     * @param actor the actor
     * @param cause what it died of
     */
    void actorDied(Deployment d, ActorThread actor, Throwable cause) {
        failed(d, "actor " + actor.name() + " of " + name + " died of " + cause, cause);
    }

    /**
     * A worker reported that deployment {@code deploymentId} of this graph lost an actor or a peer; stale reports
     * (of a deployment a restart replaced) are ignored. Called by the runtime on its control-plane thread.
     *
     * @param deploymentId the deployment's id
     * @param why          what happened, naming the actor or the worker
     */
    void reported(long deploymentId, String why) {
        Deployment d = driver.live();
        if (d.id() == deploymentId) {
            failed(d, why, null);
            return;
        }
        Deployment n = next;
        if (n != null && n.id() == deploymentId) {
            n.fail(why); // the restart that starts it sees this
        }
    }

    /**
     * A worker JVM ended: the deployment fails if it had actors there. Called by the runtime on its control-plane or
     * process-reaper thread.
     *
     * @param worker the worker
     * @param why    why, naming the worker
     */
    void workerDied(RemoteHost worker, String why) {
        Deployment d = driver.live();
        if (d.uses(worker)) {
            failed(d, why, null);
        }
        Deployment n = next;
        if (n != null && n.uses(worker)) {
            n.fail(why);
        }
    }

    /**
     * Deployment {@code d} cannot run any more (an actor died, its worker ended, a channel lost its peer): by the
     * policy, the graph dies, or it restarts on a thread of its own. Reports about a deployment that is not the live
     * one are recorded on it only. Any thread; never waits.
     *
     * @param d     the deployment
     * @param why   what happened
     * @param cause the actor's error, when it died in this JVM
     */
    void failed(Deployment d, String why, Throwable cause) {
        d.fail(why);
        if (d != driver.live() || state.get() == STARTING) {
            return; // a replaced deployment, or one still being started: whoever starts it checks its failure
        }
        if (!policy.restart()) {
            died(new ActorDiedException(why + "; " + name + " is closed: create new actors and compile again", cause));
            return;
        }
        if (!state.compareAndSet(OPEN, RESTARTING)) {
            return; // restarting already, or closed
        }
        String limit = admitRestart();
        if (limit != null) {
            died(new ActorDiedException(why + "; " + limit, cause));
            return;
        }
        int number = restartsBegun.incrementAndGet();
        d.stopLoops();
        driver.wake();
        LOG.log(System.Logger.Level.WARNING, () -> name + ": " + printable(why) + "; restarting (restart " + number
                + ", " + policy + ")");
        Thread t = Thread.ofPlatform().name("kiln-restart-" + name).daemon(true)
                .unstarted(() -> restart(d, why, cause, number));
        restarter = t;
        t.start();
    }

    /** @return null if one more restart fits the policy's limit (and counts it), else why the graph must die */
    private String admitRestart() {
        long now = System.nanoTime();
        synchronized (restartTimes) {
            while (!restartTimes.isEmpty() && now - restartTimes.peekFirst() > policy.window().toNanos()) {
                restartTimes.pollFirst();
            }
            if (restartTimes.size() >= policy.maxRestarts()) {
                return name + " restarted " + restartTimes.size() + " times within " + policy.window() + ", the limit "
                        + "of its ActorDeathPolicy (CompileOptions.onActorDeath), so it is closed: find out why its "
                        + "actors die, or raise the limit (ActorDeathPolicy.RESTART.limit)";
            }
            restartTimes.addLast(now);
            return null;
        }
    }

    /**
     * The restart thread: settles the executions of the old deployment and stops it, recreates the dead actors,
     * compiles the plan again for where they live now, starts a new deployment and opens the graph on it. A restart
     * that fails because an actor or worker died meanwhile (a new child JVM killed while it started, a worker lost
     * while it prepared its part) is tried again, within the policy's limit; any other failure (no host for an actor
     * in time, a factory that throws, the runtime closing) fails the graph.
     */
    private void restart(Deployment old, String why, Throwable cause, int first) {
        long began = System.nanoTime();
        int retired = driver.retire(why, cause, first);
        if (retired <= 0) {
            if (retired < 0) {
                died(new ActorDiedException(why + "; " + name + " could not restart: a driver thread did not stop "
                        + "collecting results within " + options.teardownTimeout() + " (teardownTimeout)", cause));
            }
            return;
        }
        old.stop(true, true);
        List<Integer> actors = old.actorIds();
        int number = first;
        while (state.get() == RESTARTING) {
            Deployment d = null;
            boolean held = false;
            boolean deploying = false;
            try {
                List<String> recreated = kiln.recreateDead(actors, policy.placementTimeout(),
                        () -> state.get() != RESTARTING);
                if (state.get() != RESTARTING) {
                    return; // closed meanwhile: the recreated actors stay free
                }
                deploying = true;
                d = kiln.redeploy(graph, output, options, name + "-r" + number);
                next = d;
                d.hold();
                held = true;
                d.start();
                if (!driver.open(d, () -> {
                    next = null;
                    restartsDone++;
                })) {
                    d.stop(true, true); // closed meanwhile
                    return;
                }
                int n = number;
                boolean replanned = !placements(d).equals(placements(old));
                LOG.log(System.Logger.Level.INFO, () -> name + " restarted (restart " + n + ") in "
                        + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - began) + " ms: "
                        + (recreated.isEmpty() ? "no actor had to be recreated" : "recreated " + String.join(", ",
                        recreated)) + (replanned ? "; the plan changed with the placement" : "")
                        + "; executions from #" + driver.submitted() + " run on the new deployment");
                String failure = d.failure();
                if (failure != null) {
                    failed(d, failure, null); // it failed before it was live: restart again
                }
                return;
            } catch (RuntimeException e) {
                next = null;
                if (d != null) {
                    if (held) {
                        d.stop(true, true);
                    }
                    d.release();
                }
                if (state.get() != RESTARTING) {
                    return;
                }
                // Died again meanwhile: a worker lost while it created an actor or set up its part, an actor dead.
                List<String> dead = kiln.deadActors(actors);
                boolean again = deploying ? !dead.isEmpty() : causedByDeath(e);
                String limit = again ? admitRestart() : null;
                if (!again || limit != null) {
                    died(new ActorDiedException(why + "; " + name + " could not restart: " + e.getMessage()
                            + (limit != null ? "; " + limit : "; it is closed: create new actors and compile again"),
                            cause));
                    return;
                }
                number = restartsBegun.incrementAndGet();
                int n = number;
                LOG.log(System.Logger.Level.WARNING, () -> name + ": restart failed (" + printable(e.getMessage())
                        + ")" + (dead.isEmpty() ? "" : " as " + printable(String.join(", ", dead)) + " died")
                        + "; trying again (restart " + n + ")");
            }
        }
    }

    /** @return whether {@code e} comes from a worker or actor that died (not from a factory, a placement, a bug) */
    private static boolean causedByDeath(Throwable e) {
        for (Throwable c = e; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (c instanceof ActorDiedException || c instanceof RemoteHost.WorkerDeathException) {
                return true;
            }
        }
        return false;
    }

    private static List<dev.kiln.compiler.Topology.ActorPlacement> placements(Deployment d) {
        return d.plan().schedules().stream().map(ExecutionPlan.ActorSchedule::placement).toList();
    }

    /** Log lines about peers' reports: control characters escaped, length bounded. */
    private static String printable(String s) {
        String text = String.valueOf(s);
        StringBuilder b = new StringBuilder(Math.min(text.length(), 500));
        for (int i = 0; i < text.length() && b.length() < 500; i++) {
            char c = text.charAt(i);
            b.append(c < 0x20 || c == 0x7f ? '?' : c);
        }
        return text.length() > 500 ? b + "..." : b.toString();
    }

    private void died(ActorDiedException died) {
        if (state.stop(died, DIED)) {
            terminate(false);
        }
    }

    /**
     * Closes the graph: every unfinished future fails with {@link GraphClosedException}, the loops stop (waiting up
     * to {@code teardownTimeout}) and the channels are freed; a restart in progress is abandoned. Idempotent.
     */
    void close() {
        if (state.stop(new GraphClosedException(name + " was closed"), CLOSED)) {
            terminate(true);
            Thread r = restarter;
            if (r != null && r != Thread.currentThread()) {
                kiln.wakeWaiters(); // a restart waiting for a joined worker gives up
                try {
                    r.join(options.teardownTimeout());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    private void terminate(boolean waitForLoops) {
        driver.stopped();
        kiln.forget(graph);
        if (waitForLoops) {
            driver.tearDown();
        } else {
            // Called on a dying actor's thread or the control plane's: tear down elsewhere, never waiting here.
            Thread.ofVirtual().name("kiln-teardown-" + name).start(driver::tearDown);
        }
    }
}
