package dev.kiln.transport.gpu;

import dev.kiln.tensor.DType;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * One rank of a communicator on simulated GPUs ({@link SimulatedDeviceOps#joinCommunicator}): NCCL's rules,
 * between processes of one machine, over TCP on the loopback interface. Like NCCL, every operation is
 * enqueued on the rank's stream and the call returns; a send completes once its peer's matching receive has
 * taken the bytes, a receive once the bytes are in its buffer, an all-reduce once every rank has joined it.
 * So a wrong order deadlocks here as on GPUs, and an operation whose peer died keeps its stream waiting until
 * the communicator is {@link #abort aborted}: the simulator does not report a dead peer (a watchdog must learn
 * of it elsewhere), as NCCL often does not. Two ranks on one device are refused when joining
 * ({@code ncclInvalidUsage}), and a pair whose matched sizes differ puts the communicator in error
 * ({@link #asyncError()}).
 *
 * <p>Joining: {@link #newId()} opens the rendezvous (a listening socket on 127.0.0.1) in the calling process,
 * as {@code ncclGetUniqueId} does; the id carries its port and a random 128-bit secret that every connection
 * must present. Each rank connects to the rendezvous, learns the others' ports, and connects to every lower
 * rank. Everything read from a socket is checked and bounded. Threads: as {@link Communicator}.
 */
public final class SimulatedCommunicator implements Communicator {

    private static final int MAGIC = 0x4B53434D; // "KSCM"
    private static final int NONCE_BYTES = 16;
    private static final int DATA = 1;
    private static final int ACK = 2;
    private static final int COLL = 3;
    private static final int RESULT = 4;
    private static final int MAX_FRAME = Integer.MAX_VALUE - 64;
    private static final int MAX_PENDING_FRAMES = 1024;
    private static final long RENDEZVOUS_LIFETIME_NANOS = TimeUnit.MINUTES.toNanos(10);
    private static final int HELLO_TIMEOUT_MS = 60_000;
    private static final byte[] CLOSE = new byte[0];

    private final SimulatedDeviceOps ops;
    private final int size;
    private final int rank;
    private final int device;
    private final long stream;
    private final byte[] nonce;
    private final int rootPort;
    private final Peer[] peers;
    private final List<Socket> sockets = new ArrayList<>();
    private final ArrayDeque<Send> selfSends = new ArrayDeque<>();
    private final ArrayDeque<Recv> selfRecvs = new ArrayDeque<>();
    private final ArrayDeque<byte[]> selfData = new ArrayDeque<>();
    private final Map<Long, Collective> collectives = new HashMap<>();
    private final Map<Long, Contribution[]> contributions = new HashMap<>();
    private final List<Part> group = new ArrayList<>();
    private ServerSocket listener;
    private int groupDepth;
    private long nextCollective;
    private boolean ready;
    private boolean aborted;
    private boolean finished;
    private String error;

    private SimulatedCommunicator(SimulatedDeviceOps ops, int size, int rank, int device, long stream, byte[] nonce,
                                  int rootPort) {
        this.ops = ops;
        this.size = size;
        this.rank = rank;
        this.device = device;
        this.stream = stream;
        this.nonce = nonce;
        this.rootPort = rootPort;
        this.peers = new Peer[size];
    }

    // ------------------------------------------------------------------ joining

    /**
     * Opens a rendezvous in this process and returns the id that names it.
     *
     * @return {@value Communicator#ID_BYTES} bytes: magic, secret, port
     */
    static byte[] newId() {
        byte[] nonce = new byte[NONCE_BYTES];
        new SecureRandom().nextBytes(nonce);
        ServerSocket server;
        try {
            server = new ServerSocket(0, 64, InetAddress.getLoopbackAddress());
        } catch (IOException e) {
            throw new IllegalStateException("cannot open the rendezvous of a simulated communicator on loopback: " + e, e);
        }
        Thread.ofVirtual().name("kiln-simcomm-rendezvous-" + server.getLocalPort()).start(() -> rendezvous(server, nonce));
        byte[] id = new byte[ID_BYTES];
        MemorySegment m = MemorySegment.ofArray(id);
        m.set(ValueLayout.JAVA_INT_UNALIGNED, 0, MAGIC);
        MemorySegment.copy(nonce, 0, m, ValueLayout.JAVA_BYTE, 4, NONCE_BYTES);
        m.set(ValueLayout.JAVA_INT_UNALIGNED, 20, server.getLocalPort());
        return id;
    }

    static SimulatedCommunicator join(SimulatedDeviceOps ops, int size, byte[] id, int rank, int device, long stream) {
        if (size < 1 || rank < 0 || rank >= size) {
            throw new IllegalArgumentException("ncclInvalidArgument: rank " + rank + " of " + size + " ranks");
        }
        if (id == null || id.length != ID_BYTES || MemorySegment.ofArray(id).get(ValueLayout.JAVA_INT_UNALIGNED, 0) != MAGIC) {
            throw new IllegalArgumentException("ncclInvalidArgument: not the id of a simulated communicator"
                    + " (make it with the same DeviceOps kind: SimulatedDeviceOps.newCommunicatorId)");
        }
        int port = MemorySegment.ofArray(id).get(ValueLayout.JAVA_INT_UNALIGNED, 20);
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("ncclInvalidArgument: corrupt communicator id");
        }
        SimulatedCommunicator c = new SimulatedCommunicator(ops, size, rank, device, stream,
                Arrays.copyOfRange(id, 4, 4 + NONCE_BYTES), port);
        Thread.ofVirtual().name("kiln-simcomm-join-r" + rank).start(c::connect);
        return c;
    }

    /** The rendezvous: collects every rank's port and device, then tells each rank the ports. */
    private static void rendezvous(ServerSocket server, byte[] nonce) {
        long deadline = System.nanoTime() + RENDEZVOUS_LIFETIME_NANOS;
        List<Socket> joined = new ArrayList<>();
        Map<Integer, Integer> ports = new HashMap<>();
        Map<String, Integer> devices = new HashMap<>();
        String failure = null;
        int expected = -1;
        try (server) {
            server.setSoTimeout(1000);
            while ((expected < 0 || joined.size() < expected) && System.nanoTime() - deadline < 0) {
                Socket s;
                try {
                    s = server.accept();
                } catch (java.net.SocketTimeoutException e) {
                    continue;
                }
                try {
                    s.setSoTimeout(HELLO_TIMEOUT_MS);
                    DataInputStream in = new DataInputStream(s.getInputStream());
                    if (in.readInt() != MAGIC || !MessageDigest.isEqual(in.readNBytes(NONCE_BYTES), nonce)) {
                        s.close();
                        continue; // not one of ours: no answer
                    }
                    int n = in.readInt();
                    int r = in.readInt();
                    int port = in.readInt();
                    String uuid = readString(in);
                    if (expected < 0) {
                        expected = n;
                    }
                    if (failure == null) {
                        if (n != expected || n < 1 || r < 0 || r >= n) {
                            failure = "ncclInvalidUsage: rank " + r + " joined as one of " + n + " ranks, rank "
                                    + "0's communicator has " + expected;
                        } else if (ports.containsKey(r)) {
                            failure = "ncclInvalidUsage: rank " + r + " joined twice";
                        } else if (devices.containsKey(uuid)) {
                            int other = devices.get(uuid); // ranks named lowest first: join order is a race
                            failure = "ncclInvalidUsage: ranks " + Math.min(other, r) + " and " + Math.max(other, r)
                                    + " use the same GPU ("
                                    + uuid + "); NCCL refuses two ranks of one communicator on one device";
                        }
                    }
                    ports.put(r, port);
                    devices.put(uuid, r);
                    joined.add(s);
                } catch (IOException e) {
                    s.close();
                }
            }
            for (Socket s : joined) {
                try (s) {
                    DataOutputStream out = new DataOutputStream(s.getOutputStream());
                    if (failure == null && ports.size() == expected) {
                        out.writeInt(0);
                        for (int r = 0; r < expected; r++) {
                            out.writeInt(ports.get(r));
                        }
                    } else {
                        out.writeInt(1);
                        out.writeUTF(failure != null ? failure : "ncclSystemError: only " + ports.size() + " of " + expected
                                + " ranks joined within " + TimeUnit.NANOSECONDS.toSeconds(RENDEZVOUS_LIFETIME_NANOS) + " s");
                    }
                    out.flush();
                } catch (IOException e) {
                    // that rank is gone; it learns nothing more
                }
            }
        } catch (IOException e) {
            for (Socket s : joined) {
                try {
                    s.close();
                } catch (IOException ignored) {
                    // closing
                }
            }
        }
    }

    private static String readString(DataInputStream in) throws IOException {
        int n = in.readUnsignedShort();
        if (n > 256) {
            throw new IOException("string of " + n + " bytes");
        }
        return new String(in.readNBytes(n), java.nio.charset.StandardCharsets.UTF_8);
    }

    /** The join thread: rendezvous, then a connection to every other rank. */
    private void connect() {
        try {
            if (size > 1) {
                ServerSocket l = new ServerSocket(0, size, InetAddress.getLoopbackAddress());
                if (!register(l)) {
                    return;
                }
            }
            int[] ports = new int[size];
            try (Socket root = open(rootPort)) {
                DataOutputStream out = new DataOutputStream(root.getOutputStream());
                out.writeInt(MAGIC);
                out.write(nonce);
                out.writeInt(size);
                out.writeInt(rank);
                out.writeInt(listener != null ? listener.getLocalPort() : 0);
                byte[] uuid = ops.deviceUuid(device).getBytes(java.nio.charset.StandardCharsets.UTF_8);
                out.writeShort(uuid.length);
                out.write(uuid);
                out.flush();
                DataInputStream in = new DataInputStream(root.getInputStream());
                if (in.readInt() != 0) {
                    fail(in.readUTF());
                    return;
                }
                for (int r = 0; r < size; r++) {
                    ports[r] = in.readInt();
                }
            }
            for (int r = 0; r < rank; r++) {
                Socket s = open(ports[r]);
                DataOutputStream out = new DataOutputStream(s.getOutputStream());
                out.writeInt(MAGIC);
                out.write(nonce);
                out.writeInt(rank);
                out.flush();
                attach(r, s);
            }
            Set<Integer> accepted = new HashSet<>();
            while (accepted.size() < size - 1 - rank) {
                Socket s = listener.accept();
                if (!register(s)) {
                    return;
                }
                s.setSoTimeout(HELLO_TIMEOUT_MS);
                DataInputStream in = new DataInputStream(s.getInputStream());
                int magic = in.readInt();
                byte[] presented = in.readNBytes(NONCE_BYTES);
                int r = in.readInt();
                if (magic != MAGIC || !MessageDigest.isEqual(presented, nonce) || r <= rank || r >= size
                        || !accepted.add(r)) {
                    s.close(); // a stranger, or a rank that connects twice: not let in
                    continue;
                }
                s.setSoTimeout(0);
                attach(r, s);
            }
            synchronized (this) {
                if (!aborted) {
                    ready = true;
                }
                notifyAll();
            }
        } catch (IOException | RuntimeException e) {
            fail("ncclSystemError: rank " + rank + " could not connect to its peers: " + e);
        }
    }

    private Socket open(int port) throws IOException {
        Socket s = new Socket();
        if (!register(s)) {
            throw new IOException("aborted");
        }
        s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), HELLO_TIMEOUT_MS);
        s.setTcpNoDelay(true);
        return s;
    }

    /** Keeps a socket so that abort can close it; false (and closed) if the communicator is aborted already. */
    private boolean register(java.io.Closeable socket) throws IOException {
        synchronized (this) {
            if (!aborted) {
                if (socket instanceof ServerSocket l) {
                    listener = l;
                } else {
                    sockets.add((Socket) socket);
                }
                return true;
            }
        }
        socket.close();
        return false;
    }

    private void attach(int r, Socket s) throws IOException {
        s.setTcpNoDelay(true);
        Peer p = new Peer(r, s);
        synchronized (this) {
            peers[r] = p;
        }
        Thread.ofVirtual().name("kiln-simcomm-r" + rank + "-from-r" + r).start(() -> p.read());
        Thread.ofVirtual().name("kiln-simcomm-r" + rank + "-to-r" + r).start(() -> p.write());
    }

    private void fail(String why) {
        synchronized (this) {
            if (error == null && !aborted) {
                error = why;
            }
            notifyAll();
        }
    }

    // ------------------------------------------------------------------ Communicator

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public int device() {
        return device;
    }

    @Override
    public void awaitReady(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (this) {
            while (!ready && error == null && !aborted) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    break;
                }
                try {
                    TimeUnit.NANOSECONDS.timedWait(this, left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
            if (ready && error == null && !aborted) {
                return;
            }
        }
        String why = error != null ? error : aborted ? "it was aborted" : "not every rank joined within " + timeout
                + (Thread.currentThread().isInterrupted() ? " (interrupted)" : "");
        abort();
        throw new IllegalStateException("simulated NCCL rank " + rank + " of " + size + " on gpu" + device
                + " could not join: " + why);
    }

    @Override
    public synchronized String asyncError() {
        return error;
    }

    @Override
    public void send(long address, long bytes, int peer) {
        checkPeer(peer);
        resolve(address, bytes, "ncclSend");
        issue(new Send(peer, address, bytes));
    }

    @Override
    public void recv(long address, long bytes, int peer) {
        checkPeer(peer);
        resolve(address, bytes, "ncclRecv");
        issue(new Recv(peer, address, bytes));
    }

    @Override
    public void allReduce(long sendAddress, long recvAddress, long count, DType dtype) {
        if (dtype == null) {
            throw new NullPointerException("dtype");
        }
        if (count < 0 || count > MAX_FRAME / dtype.byteSize()) {
            throw new IllegalArgumentException("ncclInvalidArgument: a simulated all-reduce takes 0 to "
                    + MAX_FRAME / dtype.byteSize() + " " + dtype + " elements, got " + count);
        }
        long bytes = count * dtype.byteSize();
        resolve(sendAddress, bytes, "ncclAllReduce");
        resolve(recvAddress, bytes, "ncclAllReduce");
        Collective c;
        synchronized (this) {
            checkUsable();
            c = new Collective(nextCollective++, sendAddress, recvAddress, count, dtype);
        }
        issue(c);
    }

    @Override
    public synchronized void groupStart() {
        checkUsable();
        groupDepth++;
    }

    @Override
    public void groupEnd() {
        List<Part> parts;
        synchronized (this) {
            checkUsable();
            if (groupDepth == 0) {
                throw new IllegalStateException("ncclInvalidUsage: groupEnd without groupStart on rank " + rank);
            }
            if (--groupDepth > 0 || group.isEmpty()) {
                return;
            }
            parts = List.copyOf(group);
            group.clear();
        }
        ops.enqueueTask(device, stream, new Group(parts));
    }

    @Override
    public void synchronize() {
        ops.synchronizeStream(device, stream);
    }

    @Override
    public boolean finish(Duration timeout) {
        synchronized (this) {
            if (finished || aborted) {
                return finished;
            }
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        long park = 10_000;
        while (!ops.queryStream(device, stream)) {
            if (System.nanoTime() - deadline > 0 || Thread.currentThread().isInterrupted()) {
                abort();
                return false;
            }
            LockSupport.parkNanos(park);
            park = Math.min(park * 2, 1_000_000);
        }
        synchronized (this) {
            if (aborted) {
                return false;
            }
            finished = true;
        }
        closeSockets();
        return true;
    }

    @Override
    public void abort() {
        synchronized (this) {
            if (aborted || finished) {
                return;
            }
            aborted = true;
            notifyAll();
        }
        closeSockets();
        ops.wake();
    }

    @Override
    public void close() {
        abort();
    }

    private void closeSockets() {
        List<java.io.Closeable> all = new ArrayList<>();
        synchronized (this) {
            all.addAll(sockets);
            if (listener != null) {
                all.add(listener);
            }
            for (Peer p : peers) {
                if (p != null) {
                    p.outbox.add(CLOSE);
                }
            }
        }
        for (java.io.Closeable c : all) {
            try {
                c.close();
            } catch (IOException e) {
                // closing anyway
            }
        }
    }

    private void checkUsable() {
        if (aborted || finished) {
            throw new IllegalStateException("simulated NCCL rank " + rank + " is " + (aborted ? "aborted" : "finished"));
        }
        if (!ready) {
            throw new IllegalStateException("simulated NCCL rank " + rank + " has not finished joining: call awaitReady"
                    + " first");
        }
    }

    private void checkPeer(int peer) {
        if (peer < 0 || peer >= size) {
            throw new IllegalArgumentException("ncclInvalidArgument: peer " + peer + " is not a rank of this communicator"
                    + " (0 to " + (size - 1) + ")");
        }
    }

    /** Checks, when an operation is issued, that its buffer is device memory of this rank's device. */
    private void resolve(long address, long bytes, String call) {
        if (bytes < 0) {
            throw new IllegalArgumentException("ncclInvalidArgument: " + call + " of " + bytes + " bytes");
        }
        if (bytes > MAX_FRAME) {
            throw new IllegalArgumentException("ncclInvalidArgument: a simulated " + call + " moves at most " + MAX_FRAME
                    + " bytes, got " + bytes);
        }
        if (bytes > 0) {
            ops.deviceMemory(device, address, bytes, call);
        }
    }

    private void issue(Part p) {
        synchronized (this) {
            checkUsable();
            if (groupDepth > 0) {
                group.add(p);
                return;
            }
        }
        ops.enqueueTask(device, stream, new Group(List.of(p)));
    }

    @Override
    public String toString() {
        return "SimulatedCommunicator[rank " + rank + " of " + size + " on gpu" + device + "]";
    }

    // ------------------------------------------------------------------ operations

    /** One operation of a group; its fields after start are guarded by the communicator's monitor. */
    private abstract static sealed class Part permits Send, Recv, Collective {
        boolean done;
    }

    private static final class Send extends Part {
        final int peer;
        final long address;
        final long bytes;

        Send(int peer, long address, long bytes) {
            this.peer = peer;
            this.address = address;
            this.bytes = bytes;
        }
    }

    private static final class Recv extends Part {
        final int peer;
        final long address;
        final long bytes;
        MemorySegment target;

        Recv(int peer, long address, long bytes) {
            this.peer = peer;
            this.address = address;
            this.bytes = bytes;
        }
    }

    private static final class Collective extends Part {
        final long sequence;
        final long input;
        final long output;
        final long count;
        final DType dtype;
        MemorySegment target;

        Collective(long sequence, long input, long output, long count, DType dtype) {
            this.sequence = sequence;
            this.input = input;
            this.output = output;
            this.count = count;
            this.dtype = dtype;
        }
    }

    /** One rank's part of an all-reduce, as rank 0 collects them. */
    private record Contribution(DType dtype, long count, byte[] data) {
    }

    /** The operations issued together, as one piece of work on the rank's stream. */
    private final class Group implements StreamTask {
        private final List<Part> parts;

        Group(List<Part> parts) {
            this.parts = parts;
        }

        /** Under the simulator's lock: reads what to send now, in stream order. */
        @Override
        public void start() {
            synchronized (SimulatedCommunicator.this) {
                for (Part p : parts) {
                    if (aborted) {
                        return;
                    }
                    try {
                        switch (p) {
                            case Send s -> startSend(s);
                            case Recv r -> {
                                r.target = memory(r.address, r.bytes);
                                startRecv(r);
                            }
                            case Collective c -> {
                                c.target = memory(c.output, c.count * c.dtype.byteSize());
                                startCollective(c, memory(c.input, c.count * c.dtype.byteSize()).toArray(ValueLayout.JAVA_BYTE));
                            }
                        }
                    } catch (RuntimeException e) {
                        if (error == null) {
                            error = "ncclUnhandledCudaError: rank " + rank + " could not reach its buffer: " + e.getMessage();
                        }
                    }
                }
            }
        }

        @Override
        public boolean done() {
            synchronized (SimulatedCommunicator.this) {
                if (aborted) {
                    return true;
                }
                for (Part p : parts) {
                    if (!p.done) {
                        return false;
                    }
                }
                return true;
            }
        }
    }

    private MemorySegment memory(long address, long bytes) {
        return bytes == 0 ? MemorySegment.NULL : ops.deviceMemory(device, address, bytes, "simulated NCCL");
    }

    private void startSend(Send s) {
        byte[] data = memory(s.address, s.bytes).toArray(ValueLayout.JAVA_BYTE);
        if (s.peer == rank) {
            selfSends.add(s);
            selfData.add(data);
            matchSelf();
            return;
        }
        Peer p = peers[s.peer];
        long seq = p.nextSend++;
        p.unacked.put(seq, s);
        p.frame(DATA, seq, data);
    }

    /** Sends to itself and receives from itself match in issue order; a send completes with its match. */
    private void matchSelf() {
        while (!selfRecvs.isEmpty() && !selfData.isEmpty()) {
            if (!deliver(selfRecvs.peek(), rank, selfData.peek())) {
                return;
            }
            selfRecvs.poll();
            selfData.poll();
            selfSends.poll().done = true;
        }
    }

    private void startRecv(Recv r) {
        if (r.peer == rank) {
            selfRecvs.add(r);
            matchSelf();
            return;
        }
        Peer p = peers[r.peer];
        p.posted.add(r);
        p.match();
    }

    /** Copies matched bytes into a receive; a size mismatch puts the communicator in error and leaves it waiting. */
    private boolean deliver(Recv r, int from, byte[] data) {
        if (data.length != r.bytes) {
            if (error == null) {
                error = "ncclInvalidUsage: rank " + from + " sent " + data.length + " bytes to rank " + rank + ", whose"
                        + " matching receive asks for " + r.bytes + ": the pair issues its operations in different orders,"
                        + " or the sizes disagree";
            }
            return false;
        }
        if (data.length > 0) {
            MemorySegment.copy(data, 0, r.target, ValueLayout.JAVA_BYTE, 0, data.length);
        }
        r.done = true;
        return true;
    }

    private void startCollective(Collective c, byte[] input) {
        if (size == 1) {
            MemorySegment.copy(input, 0, c.target, ValueLayout.JAVA_BYTE, 0, input.length);
            c.done = true;
            return;
        }
        collectives.put(c.sequence, c);
        if (rank == 0) {
            contribute(c.sequence, 0, new Contribution(c.dtype, c.count, input));
        } else {
            peers[0].collective(c.sequence, c.dtype, c.count, input);
        }
    }

    /** Rank 0: one rank's input of all-reduce {@code sequence}; sums and answers once all are in. */
    private void contribute(long sequence, int from, Contribution part) {
        Contribution[] all = contributions.computeIfAbsent(sequence, k -> new Contribution[size]);
        if (all[from] != null) {
            if (error == null) {
                error = "ncclInternalError: rank " + from + " contributed twice to all-reduce " + sequence;
            }
            return;
        }
        all[from] = part;
        for (Contribution c : all) {
            if (c == null) {
                return;
            }
        }
        contributions.remove(sequence);
        for (int r = 1; r < size; r++) {
            if (all[r].dtype != all[0].dtype || all[r].count != all[0].count) {
                if (error == null) {
                    error = "ncclInvalidUsage: all-reduce " + sequence + ": rank 0 reduces " + all[0].count + " "
                            + all[0].dtype + " but rank " + r + " " + all[r].count + " " + all[r].dtype;
                }
                return;
            }
        }
        List<MemorySegment> inputs = new ArrayList<>();
        for (Contribution c : all) {
            inputs.add(MemorySegment.ofArray(c.data));
        }
        byte[] sum = new byte[all[0].data.length];
        Sums.sum(all[0].dtype, all[0].count, inputs, MemorySegment.ofArray(sum));
        for (int r = 1; r < size; r++) {
            peers[r].frame(RESULT, sequence, sum);
        }
        result(sequence, sum);
    }

    /** The sum of all-reduce {@code sequence} reached this rank. */
    private void result(long sequence, byte[] sum) {
        Collective c = collectives.remove(sequence);
        if (c == null || sum.length != c.count * c.dtype.byteSize()) {
            if (error == null) {
                error = "ncclInternalError: an unexpected all-reduce result " + sequence + " reached rank " + rank;
            }
            return;
        }
        if (sum.length > 0) {
            MemorySegment.copy(sum, 0, c.target, ValueLayout.JAVA_BYTE, 0, sum.length);
        }
        c.done = true;
    }

    // ------------------------------------------------------------------ connections

    /** A send of a peer that no receive has taken yet. */
    private record Arrived(long sequence, byte[] data) {
    }

    /** The connection to one other rank, with the operations pending between the two. */
    private final class Peer {
        final int peerRank;
        final Socket socket;
        final LinkedBlockingQueue<byte[]> outbox = new LinkedBlockingQueue<>();
        final Map<Long, Send> unacked = new HashMap<>();
        final ArrayDeque<Recv> posted = new ArrayDeque<>();
        final ArrayDeque<Arrived> arrived = new ArrayDeque<>();
        long nextSend;

        Peer(int peerRank, Socket socket) {
            this.peerRank = peerRank;
            this.socket = socket;
        }

        /** Matches arrived data with posted receives in order; guarded by the communicator's monitor. */
        void match() {
            while (!posted.isEmpty() && !arrived.isEmpty()) {
                if (!deliver(posted.peek(), peerRank, arrived.peek().data)) {
                    return;
                }
                posted.poll();
                frame(ACK, arrived.poll().sequence, null);
            }
        }

        void frame(int type, long sequence, byte[] data) {
            int length = data == null ? 0 : data.length;
            byte[] f = new byte[1 + 8 + 4 + length];
            MemorySegment m = MemorySegment.ofArray(f);
            m.set(ValueLayout.JAVA_BYTE, 0, (byte) type);
            m.set(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN), 1, sequence);
            m.set(ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN), 9, length);
            if (length > 0) {
                System.arraycopy(data, 0, f, 13, length);
            }
            outbox.add(f);
        }

        void collective(long sequence, DType dtype, long count, byte[] data) {
            byte[] body = new byte[4 + 8 + data.length];
            MemorySegment m = MemorySegment.ofArray(body);
            m.set(ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN), 0, dtype.ordinal());
            m.set(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN), 4, count);
            System.arraycopy(data, 0, body, 12, data.length);
            frame(COLL, sequence, body);
        }

        /** The writing thread: sends frames in order, outside every lock. */
        void write() {
            try (DataOutputStream out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream(), 1 << 16))) {
                while (true) {
                    byte[] f = outbox.take();
                    if (f == CLOSE) {
                        return;
                    }
                    out.write(f);
                    if (outbox.isEmpty()) {
                        out.flush();
                    }
                }
            } catch (IOException | InterruptedException e) {
                // the connection is closed: the peer's pending operations wait until an abort, as with NCCL
            }
        }

        /** The reading thread: checks and applies each frame. */
        void read() {
            try (DataInputStream in = new DataInputStream(new BufferedInputStream(socket.getInputStream(), 1 << 16))) {
                while (true) {
                    int type = in.readUnsignedByte();
                    long sequence = in.readLong();
                    int length = in.readInt();
                    if (length < 0 || length > MAX_FRAME || (type == ACK && length != 0) || type < DATA || type > RESULT) {
                        throw new IOException("a malformed frame (type " + type + ", " + length + " bytes)");
                    }
                    byte[] data = in.readNBytes(length);
                    if (data.length != length) {
                        return; // closed mid-frame
                    }
                    if (!apply(type, sequence, data)) {
                        return;
                    }
                    ops.wake();
                }
            } catch (IOException e) {
                synchronized (SimulatedCommunicator.this) {
                    if (!aborted && !finished && e.getMessage() != null && e.getMessage().startsWith("a malformed")) {
                        error = "ncclRemoteError: rank " + peerRank + " sent " + e.getMessage().substring(2);
                    }
                }
            }
        }

        private boolean apply(int type, long sequence, byte[] data) throws IOException {
            synchronized (SimulatedCommunicator.this) {
                if (aborted || finished) {
                    return false;
                }
                switch (type) {
                    case DATA -> {
                        if (arrived.size() >= MAX_PENDING_FRAMES) {
                            throw new IOException("a malformed flood: " + MAX_PENDING_FRAMES + " sends not yet received");
                        }
                        arrived.add(new Arrived(sequence, data));
                        match();
                    }
                    case ACK -> {
                        Send s = unacked.remove(sequence);
                        if (s == null) {
                            throw new IOException("a malformed acknowledgement of send " + sequence);
                        }
                        s.done = true;
                    }
                    case COLL -> {
                        if (rank != 0 || data.length < 12) {
                            throw new IOException("a malformed all-reduce contribution");
                        }
                        MemorySegment m = MemorySegment.ofArray(data);
                        int dtype = m.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN), 0);
                        long count = m.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN), 4);
                        // By division: count * element size could wrap around to the length of the data.
                        if (dtype < 0 || dtype >= DType.values().length || count < 0
                                || (data.length - 12) % DType.values()[dtype].byteSize() != 0
                                || count != (data.length - 12) / DType.values()[dtype].byteSize()) {
                            throw new IOException("a malformed all-reduce contribution");
                        }
                        contribute(sequence, peerRank, new Contribution(DType.values()[dtype], count,
                                Arrays.copyOfRange(data, 12, data.length)));
                    }
                    default -> {
                        if (peerRank != 0) {
                            throw new IOException("a malformed all-reduce result");
                        }
                        result(sequence, data);
                    }
                }
                return true;
            }
        }
    }
}
