"""``manage.py add_member PROJECT USERNAME [--role student|instructor|admin] [--create]``.

Adds a user to a project with a role. ``--create`` makes the account first if there is none and
prints its generated password once. Mistakes end with exit status 1 and one line.
"""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Add a user to a project with a role (student by default); --create makes the account."

    def add_arguments(self, parser):
        parser.add_argument("project", help="the project's name")
        parser.add_argument("username")
        parser.add_argument("--role", default="student", choices=["student", "instructor", "admin"])
        parser.add_argument("--create", action="store_true", help="create the user if missing (prints a password)")

    def handle(self, *args, **options):
        import secrets

        from django.contrib.auth import get_user_model
        from django.db import transaction

        from annotation.models import Project
        from annotation.services import membership_add
        from ezquant_web.errors import ApplicationError

        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            raise CommandError(f"no project named {options['project']!r}")
        users = get_user_model()
        password = None
        with transaction.atomic():
            user = users.objects.filter(username=options["username"]).first()
            if user is None:
                if not options["create"]:
                    raise CommandError(f"no user named {options['username']!r} (add --create to make the account)")
                password = secrets.token_urlsafe(12)
                user = users.objects.create_user(options["username"], password=password)
            try:
                membership_add(project=project, user=user, role=options["role"])
            except ApplicationError as exc:
                raise CommandError(exc.message) from None
        self.stdout.write(f"{user.get_username()} is now a {options['role']} of {project.name}")
        if password is not None:
            self.stdout.write(f"password: {password}")
