package dev.kiln.compiler;

import java.util.Map;

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
     * Where one actor lives.
     *
     * @param host    host name
     * @param process process name within the host ({@code driver} for the driver's JVM)
     */
    public record ActorPlacement(String host, String process) {

        /** The driver's own JVM on this host. */
        public static final ActorPlacement IN_DRIVER = new ActorPlacement("localhost", "driver");

        /** @return {@code host/process} */
        @Override
        public String toString() {
            return host + "/" + process;
        }
    }
}
