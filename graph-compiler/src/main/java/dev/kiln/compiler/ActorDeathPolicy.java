package dev.kiln.compiler;

import java.time.Duration;
import java.util.Objects;

/**
 * What a compiled graph does when one of its actors dies: its thread ended on an error the actor cannot survive
 * (a {@code VirtualMachineError}), its worker JVM ended (SIGKILL included), or its joined worker left or was lost.
 * Set with {@link CompileOptions#onActorDeath}.
 *
 * <ul>
 *   <li>{@link #FAIL} (the default): every pending and later execution fails with {@code ActorDiedException} and the
 *       graph closes; create new actors and compile again.</li>
 *   <li>{@link #RESTART}: the runtime recreates each dead actor from its factory, under the same id and name, on a
 *       live host that matches its {@code ActorOptions} (the driver's JVM; a new child JVM of the same process name;
 *       a joined worker with the host name and labels asked for, waiting up to {@link #placementTimeout()} for one to
 *       join), compiles the plan again for the new placement, reopens every channel and starts every loop again.
 *       Only the executions in flight at the death fail, with {@code GraphRestartedException}; {@code execute}
 *       during the restart waits for it (up to {@code submitTimeout}). An actor's state does not survive: its
 *       factory makes a fresh one. At most {@link #maxRestarts()} restarts within {@link #window()}: one more death
 *       fails the graph as {@link #FAIL} does.</li>
 * </ul>
 *
 * <pre>{@code
 * CompileOptions.defaults().onActorDeath(ActorDeathPolicy.RESTART)
 * CompileOptions.defaults().onActorDeath(ActorDeathPolicy.RESTART.limit(10, Duration.ofMinutes(5)))
 * }</pre>
 *
 * @param restart          whether the graph restarts (true) or fails (false)
 * @param maxRestarts      with restart: restarts allowed within {@code window}, >= 1; else 0
 * @param window           with restart: the sliding window of {@code maxRestarts}, > 0; else zero
 * @param placementTimeout with restart: how long a restart waits for a live joined worker that matches a dead
 *                         actor's placement (one that rejoins after its own restart, or another), > 0; else zero
 */
public record ActorDeathPolicy(boolean restart, int maxRestarts, Duration window, Duration placementTimeout) {

    /** The graph fails and closes when one of its actors dies. */
    public static final ActorDeathPolicy FAIL = new ActorDeathPolicy(false, 0, Duration.ZERO, Duration.ZERO);

    /**
     * The graph restarts when one of its actors dies: at most 3 restarts within a minute, waiting up to 30 s for a
     * joined worker to take a dead actor's place.
     */
    public static final ActorDeathPolicy RESTART = new ActorDeathPolicy(true, 3, Duration.ofMinutes(1),
            Duration.ofSeconds(30));

    /**
     * Checks the values.
     *
     * @throws IllegalArgumentException with restart: if {@code maxRestarts < 1} or a duration is not positive;
     *                                  without: if any value is set
     */
    public ActorDeathPolicy {
        Objects.requireNonNull(window, "window");
        Objects.requireNonNull(placementTimeout, "placementTimeout");
        if (restart) {
            if (maxRestarts < 1) {
                throw new IllegalArgumentException("maxRestarts must be >= 1, got " + maxRestarts);
            }
            if (window.isNegative() || window.isZero()) {
                throw new IllegalArgumentException("the restart window must be > 0, got " + window);
            }
            if (placementTimeout.isNegative() || placementTimeout.isZero()) {
                throw new IllegalArgumentException("placementTimeout must be > 0, got " + placementTimeout);
            }
        } else if (maxRestarts != 0 || !window.isZero() || !placementTimeout.isZero()) {
            throw new IllegalArgumentException("a policy that does not restart takes no restart limit or timeout: "
                    + "use ActorDeathPolicy.FAIL");
        }
    }

    /**
     * {@return a copy with that limit}
     *
     * @param max    restarts allowed within {@code within}, >= 1
     * @param within the sliding window, > 0
     * @throws IllegalStateException    on {@link #FAIL}, which never restarts
     * @throws IllegalArgumentException if a value is out of range
     */
    public ActorDeathPolicy limit(int max, Duration within) {
        requireRestart("limit");
        return new ActorDeathPolicy(true, max, within, placementTimeout);
    }

    /**
     * {@return a copy with that timeout}
     *
     * @param value how long a restart waits for a matching joined worker, > 0
     * @throws IllegalStateException    on {@link #FAIL}, which never restarts
     * @throws IllegalArgumentException if the value is not positive
     */
    public ActorDeathPolicy placementTimeout(Duration value) {
        requireRestart("placementTimeout");
        return new ActorDeathPolicy(true, maxRestarts, window, value);
    }

    private void requireRestart(String what) {
        if (!restart) {
            throw new IllegalStateException("ActorDeathPolicy.FAIL never restarts, so it takes no " + what
                    + ": start from ActorDeathPolicy.RESTART");
        }
    }

    @Override
    public String toString() {
        return restart ? "RESTART(at most " + maxRestarts + " within " + window + ", placement timeout "
                + placementTimeout + ")" : "FAIL";
    }
}
