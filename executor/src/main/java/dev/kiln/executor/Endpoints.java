package dev.kiln.executor;

import io.aeron.Aeron;
import io.aeron.ChannelUriStringBuilder;
import io.aeron.Image;
import io.aeron.Subscription;
import io.aeron.UnavailableImageHandler;
import io.aeron.exceptions.RegistrationException;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;

/**
 * UDP endpoints of a JVM's media driver: {@code host:port} strings, the first subscription that
 * binds one, and the URIs of later subscriptions and publications on it. Every subscription on one
 * endpoint must name it exactly as bound, so port 0 ("any free port") is resolved here, before
 * Aeron binds it, by asking the operating system for a free port and retrying if another process
 * takes it first.
 */
final class Endpoints {

    private static final int BIND_ATTEMPTS = 20;

    private Endpoints() {
    }

    /**
     * A bound endpoint and the subscription that holds it.
     *
     * @param endpoint     {@code host:port} with the real port
     * @param subscription the subscription bound to it
     */
    record Bound(String endpoint, Subscription subscription) {
    }

    /**
     * Binds a subscription to {@code endpoint}, picking a free port for port 0.
     *
     * @param aeron      the client
     * @param endpoint   {@code host:port}; the host must be an address of this machine
     * @param streamId   the subscription's stream
     * @param whenGone   told when an image of the subscription goes away, on the client's conductor thread
     * @return the endpoint with its port, and the subscription
     * @throws IllegalArgumentException if the endpoint is not {@code host:port}
     * @throws IllegalStateException    if the endpoint cannot be bound (naming it and why)
     */
    static Bound bind(Aeron aeron, String endpoint, int streamId, UnavailableImageHandler whenGone) {
        String host = host(endpoint);
        int port = port(endpoint);
        RegistrationException last = null;
        for (int attempt = 0; attempt < (port == 0 ? BIND_ATTEMPTS : 1); attempt++) {
            String concrete = host + ":" + (port == 0 ? freePort(host) : port);
            try {
                Subscription s = aeron.addSubscription(uri(concrete), streamId, Endpoints::ignore, whenGone);
                return new Bound(concrete, s);
            } catch (RegistrationException e) {
                last = e; // taken meanwhile by another process: try another port
            }
        }
        throw new IllegalStateException("cannot listen on " + endpoint + ": " + (last != null ? last.getMessage() : "")
                + "; give an address of this machine and a free UDP port (KilnOptions.listen, kiln-worker --listen)", last);
    }

    /**
     * @param endpoint {@code host:port}
     * @return the Aeron UDP URI of a subscription on it
     */
    static String uri(String endpoint) {
        return new ChannelUriStringBuilder().media("udp").endpoint(endpoint).build();
    }

    /**
     * @param endpoint {@code host:port}
     * @return the host part
     * @throws IllegalArgumentException if it is not {@code host:port}
     */
    static String host(String endpoint) {
        int colon = endpoint.lastIndexOf(':');
        if (colon <= 0 || colon == endpoint.length() - 1) {
            throw new IllegalArgumentException("'" + endpoint + "' is not host:port");
        }
        return endpoint.substring(0, colon);
    }

    /**
     * @param endpoint {@code host:port}
     * @return the port
     * @throws IllegalArgumentException if it is not {@code host:port} with a port from 0 to 65535
     */
    static int port(String endpoint) {
        String digits = endpoint.substring(host(endpoint).length() + 1);
        try {
            int port = Integer.parseInt(digits);
            if (port < 0 || port > 65535) {
                throw new NumberFormatException();
            }
            return port;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + endpoint + "' has no port from 0 to 65535");
        }
    }

    private static int freePort(String host) {
        try (DatagramSocket socket = new DatagramSocket(new InetSocketAddress(InetAddress.getByName(host), 0))) {
            return socket.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot find a free UDP port on " + host + ": " + e.getMessage()
                    + "; give an address of this machine", e);
        }
    }

    private static void ignore(Image image) {
    }
}
