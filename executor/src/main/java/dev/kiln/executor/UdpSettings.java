package dev.kiln.executor;

import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.graph.Transport;

/**
 * How one compiled graph's Aeron UDP channels are laid out, the same in every process of the
 * graph: the stream ids start at {@code streamBase}; each UDP channel, in plan order, takes one
 * data stream per reader and then one release stream ({@link #streams}). The side channel of an NCCL
 * channel whose participants are on several hosts is such a channel too
 * ({@link GraphChannels#sideTransport}). Stream ids are unique among the live graphs of a driver, so
 * channels of several graphs share each host's endpoint.
 *
 * @param streamBase    the first stream id of the graph
 * @param mtuLength     the MTU of the data publications, in bytes
 * @param termLength    the term length of the data publications, in bytes
 * @param peerTimeoutNs how long a peer may stay unreachable before the channel counts it as lost
 * @param dataKey       the graph's key for authenticated data frames ({@code KilnOptions.authenticateData}), made
 *                      per graph by the driver and sent with the plan; null when frames are not authenticated
 */
public record UdpSettings(int streamBase, int mtuLength, int termLength, long peerTimeoutNs, byte[] dataKey) {

    /** Never shows the key, only whether there is one. */
    @Override
    public String toString() {
        return "UdpSettings[streamBase=" + streamBase + ", mtuLength=" + mtuLength + ", termLength=" + termLength
                + ", peerTimeoutNs=" + peerTimeoutNs + ", dataKey=" + (dataKey == null ? "none" : "set") + "]";
    }

    /**
     * @param plan a plan
     * @return how many stream ids its UDP channels take
     */
    public static int streams(ExecutionPlan plan) {
        int n = 0;
        for (ChannelSpec c : plan.channels()) {
            if (overUdp(plan, c)) {
                n += c.readers().size() + 1;
            }
        }
        return n;
    }

    /**
     * @param plan    the plan
     * @param channel a UDP channel of it, or an NCCL channel whose side channel goes over UDP
     * @return the data stream id of its reader 0 (reader {@code r} uses that plus {@code r}); its release
     *         stream follows its last reader's
     */
    public int dataStream(ExecutionPlan plan, int channel) {
        int at = streamBase;
        for (ChannelSpec c : plan.channels()) {
            if (c.id() == channel) {
                return at;
            }
            if (overUdp(plan, c)) {
                at += c.readers().size() + 1;
            }
        }
        throw new IllegalArgumentException("the plan has no channel c" + channel);
    }

    private static boolean overUdp(ExecutionPlan plan, ChannelSpec c) {
        return c.transport() == Transport.AERON_UDP
                || (c.transport() == Transport.NCCL && GraphChannels.sideTransport(plan, c) == Transport.AERON_UDP);
    }
}
