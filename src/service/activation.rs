//! Socket activation, the sd_listen_fds(3) protocol: the socket a service
//! manager, or the server's previous self, passed to this process.

use std::net::UdpSocket;
use std::os::fd::{OwnedFd, RawFd};
use std::process::Command;

use crate::error::{Error, Result};
use crate::sys::activation::{self as sys, AdoptError, FdKind, LISTEN_FDS_START};

/// What the protocol's variables say was passed: `count` descriptors from
/// 3 on, named or not.
#[derive(Debug, PartialEq, Eq)]
struct Listen {
    count: usize,
    names: Option<Vec<String>>,
}

/// The UDP socket passed to this process by socket activation, if any: the
/// one descriptor of the `LISTEN_FDS` passed that is a UDP socket, or,
/// given a `name` and a `LISTEN_FDNAMES` to look it up in, the one of that
/// name (a `FileDescriptorName=` of the socket unit). It comes back
/// close-on-exec, and otherwise as it was passed: bound, with the options
/// the service manager set.
///
/// `Ok(None)` when nothing was passed: `LISTEN_FDS` is unset or 0, or
/// `LISTEN_PID` names another process (the variables were meant for a
/// parent). Unlike sd_listen_fds(3), an unset `LISTEN_PID` is accepted
/// when `LISTEN_FDS` is set, since a server that re-executes itself to
/// upgrade ([`pass_socket`]) cannot know the new process's id before the
/// exec makes it.
///
/// # Errors
///
/// [`Error::is_config`] errors, whose message names the descriptor and what
/// it is: a malformed variable; a single descriptor passed that is not a
/// UDP socket ("inherited fd 3 is a stream socket, not a UDP socket");
/// among several, none or more than one UDP socket without a name to choose
/// by, or no descriptor or a non-UDP one of the name given; a descriptor
/// an earlier call already took.
///
/// # The variables stay
///
/// sd_listen_fds(3) can unset the variables; this does not, since changing
/// the environment while other threads may read it is unsound. That is
/// harmless: a program this process starts inherits none of the
/// descriptors (they are close-on-exec) and, when `LISTEN_PID` was set,
/// sees a process id not its own; [`pass_socket`] sets the variables anew
/// for the one child meant to have the socket. Only a child started with
/// an unset `LISTEN_PID` would look at its descriptor 3, which is then not
/// this socket: a program that starts others may `env_remove` the
/// variables on their `Command`. A second call in this process does not
/// take the same descriptor again: it fails.
///
/// Written by hand, a few lines, rather than with a crate.
///
/// ```
/// use std::net::UdpSocket;
///
/// // Under a socket unit with `FileDescriptorName=greeter`, or started by
/// // `pass_socket`; otherwise bind as usual.
/// let socket = match udp_greeter::service::inherited_socket(Some("greeter"))? {
///     Some(socket) => socket,
///     None => UdpSocket::bind("127.0.0.1:0")?,
/// };
/// # drop(socket);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inherited_socket(name: Option<&str>) -> Result<Option<UdpSocket>> {
    let listen = parse_listen(
        var("LISTEN_PID")?.as_deref(),
        var("LISTEN_FDS")?.as_deref(),
        var("LISTEN_FDNAMES")?.as_deref(),
        std::process::id(),
    )
    .map_err(Error::inherited)?;
    let Some(listen) = listen else {
        return Ok(None);
    };
    let mut kinds = Vec::with_capacity(listen.count);
    for fd in fds(listen.count) {
        let kind = sys::probe(fd)
            .map_err(|e| Error::inherited(format!("cannot look at inherited fd {fd}: {e}")))?;
        if kind != FdKind::Closed {
            // As sd_listen_fds(3) does: passed to this process, not to
            // the programs it starts. A failure only leaves one open there.
            let _ = sys::set_cloexec(fd);
        }
        kinds.push(kind);
    }
    let fd = choose(&listen, name, &kinds).map_err(Error::inherited)?;
    match sys::adopt_udp(fd) {
        Ok(socket) => Ok(Some(socket)),
        Err(AdoptError::Taken) => Err(Error::inherited(format!(
            "inherited fd {fd} was already taken by an earlier call"
        ))),
        Err(AdoptError::Kind(kind)) => Err(not_udp(fd, None, kind)),
        Err(AdoptError::Io(e)) => Err(Error::inherited(format!(
            "cannot take inherited fd {fd}: {e}"
        ))),
    }
}

/// Makes the child that `cmd` spawns receive `socket` as its descriptor 3,
/// with `LISTEN_FDS=1`, `LISTEN_FDNAMES` set to `name` (removed without
/// one) and `LISTEN_PID` removed: what [`inherited_socket`] in the child
/// reads. For an upgrade in place: the new program reads the same socket,
/// and what arrives meanwhile waits in its receive buffer.
///
/// A copy of the socket lives in `cmd` until it is dropped, so `socket`
/// itself may be closed before the spawn. In the child, only `dup2` (or
/// `fcntl`, when the copy already is descriptor 3) runs between fork and
/// exec, both safe there.
///
/// # Errors
///
/// A `name` that `LISTEN_FDNAMES` cannot carry (empty, over 255 bytes, or
/// other than printable ASCII without `:`), an [`Error::is_config`]
/// error; or the socket could not be duplicated.
///
/// ```
/// use std::net::UdpSocket;
/// use std::process::Command;
///
/// let socket = UdpSocket::bind("127.0.0.1:0")?;
/// let mut cmd = Command::new("true");
/// udp_greeter::service::pass_socket(&mut cmd, &socket, Some("greeter"))?;
/// assert!(cmd.status()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn pass_socket(cmd: &mut Command, socket: &UdpSocket, name: Option<&str>) -> Result<()> {
    if let Some(name) = name {
        check_name(name).map_err(Error::config)?;
    }
    let copy = socket
        .try_clone()
        .map_err(|e| Error::io("duplicate the socket to pass on", e))?;
    sys::pass_as_fd3(cmd, OwnedFd::from(copy));
    cmd.env("LISTEN_FDS", "1").env_remove("LISTEN_PID");
    match name {
        Some(name) => cmd.env("LISTEN_FDNAMES", name),
        None => cmd.env_remove("LISTEN_FDNAMES"),
    };
    Ok(())
}

/// Whether `name` may stand in `LISTEN_FDNAMES`, by the rules of
/// sd_pid_notify_with_fds(3)'s `FDNAME=`.
fn check_name(name: &str) -> std::result::Result<(), String> {
    let fits = !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if fits {
        Ok(())
    } else {
        Err(format!(
            "socket name {name:?} is not 1 to 255 printable ASCII characters without ':'"
        ))
    }
}

/// The variable `name`, `None` if unset; an error if it is not text.
fn var(name: &str) -> Result<Option<String>> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|v| Some(v.to_string()))
            .ok_or_else(|| Error::inherited(format!("{name} is not text: {value:?}"))),
    }
}

/// The descriptors `LISTEN_FDS=count` passes: 3, 4, ...
fn fds(count: usize) -> impl Iterator<Item = RawFd> {
    // `parse_listen` bounds `count` so that every number fits.
    (0..count).map(|i| LISTEN_FDS_START + i as RawFd)
}

/// What `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` say, for the
/// process `our_pid`: `None` if nothing was passed to it.
fn parse_listen(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    our_pid: u32,
) -> std::result::Result<Option<Listen>, String> {
    let Some(fds) = fds else {
        return Ok(None);
    };
    if let Some(pid) = pid {
        let pid: u32 = pid
            .parse()
            .map_err(|_| format!("LISTEN_PID is {pid:?}, not a process id"))?;
        if pid != our_pid {
            return Ok(None);
        }
    }
    let count: usize = fds
        .parse()
        .map_err(|_| format!("LISTEN_FDS is {fds:?}, not a number of descriptors"))?;
    if count > (RawFd::MAX - LISTEN_FDS_START) as usize {
        return Err(format!(
            "LISTEN_FDS is {count}, more descriptors than can be"
        ));
    }
    if count == 0 {
        return Ok(None);
    }
    let names = match names {
        None => None,
        Some(names) => {
            let names: Vec<String> = names.split(':').map(str::to_string).collect();
            if names.len() != count {
                return Err(format!(
                    "LISTEN_FDNAMES names {} descriptors, LISTEN_FDS says {count}",
                    names.len()
                ));
            }
            Some(names)
        }
    };
    Ok(Some(Listen { count, names }))
}

/// Which descriptor to take, given what each one passed is (`kinds`, from
/// fd 3 on): the one named `name` where there are names, else the one UDP
/// socket.
fn choose(
    listen: &Listen,
    name: Option<&str>,
    kinds: &[FdKind],
) -> std::result::Result<RawFd, String> {
    let fd = |i: usize| LISTEN_FDS_START + i as RawFd;
    if let (Some(name), Some(names)) = (name, &listen.names) {
        let named: Vec<usize> = (0..listen.count).filter(|&i| names[i] == name).collect();
        return match named[..] {
            [i] if kinds[i].is_udp() => Ok(fd(i)),
            [i] => Err(not_udp_words(fd(i), Some(name), kinds[i])),
            [] => Err(format!(
                "no inherited fd is named {name:?} (LISTEN_FDNAMES is {:?})",
                names.join(":")
            )),
            _ => Err(format!(
                "inherited fds {} share the name {name:?}",
                list(named.iter().map(|&i| fd(i).to_string()))
            )),
        };
    }
    let udp: Vec<usize> = (0..listen.count).filter(|&i| kinds[i].is_udp()).collect();
    let label = |i: usize| match &listen.names {
        Some(names) => format!("fd {} ({:?})", fd(i), names[i]),
        None => format!("fd {}", fd(i)),
    };
    match udp[..] {
        [i] => Ok(fd(i)),
        [] if listen.count == 1 => Err(not_udp_words(fd(0), None, kinds[0])),
        [] => Err(format!(
            "none of the {} inherited fds is a UDP socket: {}",
            listen.count,
            list((0..listen.count).map(|i| format!("{} is {}", label(i), kinds[i])))
        )),
        _ => Err(format!(
            "{} inherited fds are UDP sockets, {}: a name is needed to choose one",
            udp.len(),
            list(udp.iter().map(|&i| label(i)))
        )),
    }
}

fn not_udp(fd: RawFd, name: Option<&str>, kind: FdKind) -> Error {
    Error::inherited(not_udp_words(fd, name, kind))
}

fn not_udp_words(fd: RawFd, name: Option<&str>, kind: FdKind) -> String {
    let what = match name {
        Some(name) => format!("inherited fd {fd} ({name:?})"),
        None => format!("inherited fd {fd}"),
    };
    match kind {
        FdKind::Closed => format!("{what} is not open, though LISTEN_FDS counts it"),
        _ => format!("{what} is {kind}, not a UDP socket"),
    }
}

/// "a, b and c".
fn list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP: FdKind = FdKind::Socket {
        domain: libc::AF_INET6,
        ty: libc::SOCK_DGRAM,
        protocol: libc::IPPROTO_UDP,
    };
    const TCP: FdKind = FdKind::Socket {
        domain: libc::AF_INET,
        ty: libc::SOCK_STREAM,
        protocol: libc::IPPROTO_TCP,
    };

    fn listen(count: usize, names: Option<&str>) -> Listen {
        parse_listen(None, Some(&count.to_string()), names, 1)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn parses_the_variables() {
        let ours = 4242;
        let parse = |pid, fds, names| parse_listen(pid, fds, names, ours);
        assert_eq!(parse(None, None, None), Ok(None));
        assert_eq!(parse(Some("4242"), None, None), Ok(None));
        // For another process, a parent's: nothing for us.
        assert_eq!(parse(Some("1"), Some("1"), None), Ok(None));
        assert_eq!(parse(Some("4242"), Some("0"), None), Ok(None));
        let one = Listen {
            count: 1,
            names: None,
        };
        assert_eq!(parse(Some("4242"), Some("1"), None), Ok(Some(one)));
        // No LISTEN_PID: a parent that re-executed us could not know it.
        let two = Listen {
            count: 2,
            names: Some(vec!["greeter".into(), "metrics".into()]),
        };
        assert_eq!(
            parse(None, Some("2"), Some("greeter:metrics")),
            Ok(Some(two))
        );
        // A malformed pid is an error even when it cannot be ours.
        let e = parse(Some("me"), Some("1"), None).unwrap_err();
        assert_eq!(e, "LISTEN_PID is \"me\", not a process id");
        let e = parse(None, Some("-1"), None).unwrap_err();
        assert_eq!(e, "LISTEN_FDS is \"-1\", not a number of descriptors");
        let e = parse(None, Some("3"), Some("a:b")).unwrap_err();
        assert_eq!(e, "LISTEN_FDNAMES names 2 descriptors, LISTEN_FDS says 3");
        assert!(parse(None, Some("4294967296"), None).is_err());
    }

    #[test]
    fn chooses_the_one_udp_socket() {
        assert_eq!(choose(&listen(1, None), None, &[UDP]), Ok(3));
        assert_eq!(choose(&listen(1, None), Some("x"), &[UDP]), Ok(3));
        let e = choose(&listen(1, None), None, &[TCP]).unwrap_err();
        assert_eq!(e, "inherited fd 3 is a stream socket, not a UDP socket");
        let e = choose(&listen(1, None), None, &[FdKind::Closed]).unwrap_err();
        assert_eq!(e, "inherited fd 3 is not open, though LISTEN_FDS counts it");
        assert_eq!(choose(&listen(3, None), None, &[TCP, UDP, TCP]), Ok(4));
        let e = choose(&listen(2, None), None, &[TCP, FdKind::Closed]).unwrap_err();
        assert_eq!(
            e,
            "none of the 2 inherited fds is a UDP socket: \
             fd 3 is a stream socket and fd 4 is not open"
        );
        let e = choose(&listen(2, Some("a:b")), None, &[UDP, UDP]).unwrap_err();
        assert_eq!(
            e,
            "2 inherited fds are UDP sockets, fd 3 (\"a\") and fd 4 (\"b\"): \
             a name is needed to choose one"
        );
    }

    #[test]
    fn chooses_by_name() {
        let two = listen(2, Some("greeter:other"));
        assert_eq!(choose(&two, Some("other"), &[UDP, UDP]), Ok(4));
        assert_eq!(choose(&two, Some("greeter"), &[UDP, UDP]), Ok(3));
        let e = choose(&two, Some("greeter"), &[TCP, UDP]).unwrap_err();
        assert_eq!(
            e,
            "inherited fd 3 (\"greeter\") is a stream socket, not a UDP socket"
        );
        let e = choose(&two, Some("dns"), &[UDP, UDP]).unwrap_err();
        assert_eq!(
            e,
            "no inherited fd is named \"dns\" (LISTEN_FDNAMES is \"greeter:other\")"
        );
        let same = listen(3, Some("a:a:b"));
        let e = choose(&same, Some("a"), &[UDP, UDP, UDP]).unwrap_err();
        assert_eq!(e, "inherited fds 3 and 4 share the name \"a\"");
    }

    #[test]
    fn names_that_fit() {
        assert!(check_name("greeter").is_ok());
        for bad in ["", "a:b", "a b", "é", &"x".repeat(256)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
