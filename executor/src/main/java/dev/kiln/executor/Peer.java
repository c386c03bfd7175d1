package dev.kiln.executor;

/**
 * One process of a compiled graph, as every other process of the graph needs to know it: to name
 * the shared-memory files it writes, and to reach it over Aeron UDP.
 *
 * @param process      its process name in the plan ({@code driver}, a child JVM's name, a joined worker's name)
 * @param pid          its process id on its host
 * @param host         its host name, as the plan's placements use it
 * @param endpoint     the {@code host:port} where its media driver receives Aeron UDP, or null if it receives none
 * @param shmDirectory its host's shared-memory directory
 */
public record Peer(String process, long pid, String host, String endpoint, String shmDirectory) {
}
