package dev.kiln.compiler;

import dev.kiln.compiler.Topology.ActorPlacement;

import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Names GPUs in plans and messages as {@code host/gpuN}, N being the index as a JVM numbers the device, and appends
 * {@code [uuid]} where that alone is ambiguous among the GPUs it was given: another device of the host shown with
 * the same index, or the same device shown with another index. Not thread-safe.
 */
final class DeviceNames {

    private final Map<String, Set<String>> uuidsOfName = new HashMap<>();
    private final Map<List<String>, Set<Integer>> indicesOfUuid = new HashMap<>();

    /**
     * Records a device as some JVM numbers it.
     *
     * @param host  its host
     * @param index its index in that JVM
     * @param uuid  its UUID
     */
    void add(String host, int index, String uuid) {
        uuidsOfName.computeIfAbsent(host + "/gpu" + index, k -> new HashSet<>()).add(uuid);
        indicesOfUuid.computeIfAbsent(List.of(host, uuid), k -> new HashSet<>()).add(index);
    }

    /**
     * Records the device of a placement; a placement without a GPU adds nothing.
     *
     * @param p a placement
     */
    void add(ActorPlacement p) {
        if (p.hasGpu()) {
            add(p.host(), p.device(), p.deviceUuid());
        }
    }

    /**
     * @param host  the host
     * @param index the index as some JVM numbers the device
     * @param uuid  the device's UUID
     * @return {@code gpuN}, or {@code gpuN[uuid]} where ambiguous
     */
    String gpu(String host, int index, String uuid) {
        boolean ambiguous = uuidsOfName.getOrDefault(host + "/gpu" + index, Set.of()).size() > 1
                || indicesOfUuid.getOrDefault(List.of(host, uuid), Set.of()).size() > 1;
        return "gpu" + index + (ambiguous ? "[" + uuid + "]" : "");
    }

    /**
     * @param p a placement with a GPU
     * @return {@code gpuN} or {@code gpuN[uuid]}, as the placement's JVM numbers its device
     */
    String gpu(ActorPlacement p) {
        return gpu(p.host(), p.device(), p.deviceUuid());
    }

    /**
     * @param p a placement with a GPU
     * @return {@code host/gpuN}, with {@code [uuid]} where ambiguous
     */
    String device(ActorPlacement p) {
        return p.host() + "/" + gpu(p);
    }

    /**
     * @param p a placement
     * @return {@code host/process}, followed by {@code /gpuN} (with {@code [uuid]} where ambiguous) for a placement
     *         with a GPU
     */
    String where(ActorPlacement p) {
        return p.hasGpu() ? p.host() + "/" + p.process() + "/" + gpu(p) : p.toString();
    }
}
